"""`smart bench qqp --embedder`: the offline embedder and LangChain's OpenAIEmbeddings (offered
by smart_langchain through an entry point, run against the local fake server the bench starts)
measured on the same pairs; the fake's vectors are the offline ones, so the rows are equal."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smart_core.cli import app
from smart_core.errors import ConfigError
from smart_core.jobs.bench_embedders import open_embedders
from smart_core.jobs.cache_bench import QQP_PATH, bench_qqp_embedders, load_qqp

pytest.importorskip("langchain_openai")

PAIRS = [
    ("How do I learn Python quickly?", "How do I learn Python quickly", True),
    ("What is the capital of France?", "What is the capital of Spain?", False),
    ("Why is the sky blue?", "Completely unrelated words here", False),
    ("How can I lose weight fast?", "How can I lose weight fast?", True),
    ("What is machine learning?", "What is machine learning used for?", False),
    ("How do I reset my password?", "How do I reset my password", True),
]


def _pairs(n: int = 240) -> list[dict[str, object]]:
    """Many small variations of the pairs above (numbered, so that questions differ)."""
    return [
        {"a": f"{a} ({i})", "b": f"{b} ({i})", "duplicate": d}
        for i in range(n // len(PAIRS))
        for a, b, d in PAIRS
    ]


def test_both_embedders_choose_the_same_thresholds_on_the_same_vectors():
    pairs = _pairs()
    with open_embedders(["offline", "langchain"], 512) as embedders:
        assert type(embedders["langchain"]).__name__ == "FunctionEmbedder"
        runs = bench_qqp_embedders(pairs, embedders, [0.8, 0.9], epsilons=(0.05, 0.1), chunk=50)
    offline, network = runs
    assert (offline.embedder, network.embedder) == ("offline", "langchain")
    assert offline.texts == network.texts == 2 * len(pairs)
    assert offline.dimensions == network.dimensions == 512
    for eps in (0.05, 0.1):
        a, b = offline.chosen(eps), network.chosen(eps)
        assert (a is None) == (b is None)
        if a is not None:
            assert a.threshold == b.threshold and a.hits == b.hits
    for a, b in zip(offline.rows, network.rows, strict=True):
        assert (a.threshold, a.hits, a.false_hits, a.chosen_by) == (
            b.threshold,
            b.hits,
            b.false_hits,
            b.chosen_by,
        )
    assert offline.rows[0].hits > 0 and offline.rows[0].false_hits > 0  # near misses count


def test_an_unknown_embedder_is_refused_by_name():
    with (
        pytest.raises(ConfigError, match="choose among offline, langchain"),
        open_embedders(["offline", "word2vec"], 64),
    ):
        pass
    with (
        pytest.raises(ConfigError, match="cannot load nothing from json"),
        open_embedders(["json:nothing"], 64),
    ):
        pass


def test_the_command_prints_each_embedder_and_skips_without_the_data(tmp_path: Path):
    path = tmp_path / "dev.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(p) + "\n" for p in _pairs(120))
    args = ["bench", "qqp", "--embedder", "offline,langchain", "--dimensions", "256"]
    result = CliRunner().invoke(app, [*args, "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.output)
    assert [r["embedder"] for r in runs] == ["offline", "langchain"]
    assert runs[0]["rows"] == runs[1]["rows"]
    table = CliRunner().invoke(app, [*args, "--data", str(path)], env={"COLUMNS": "300"})
    said = " ".join(table.output.split())
    assert "embedder langchain (256 dimensions)" in said and "are the offline embedder's" in said
    skipped = CliRunner().invoke(app, [*args, "--data", str(tmp_path / "missing.jsonl.gz")])
    assert skipped.exit_code == 0 and "skipped" in skipped.output


@pytest.mark.skipif(not QQP_PATH.exists(), reason="needs ../shared/data/qqp/dev.jsonl.gz")
def test_on_real_pairs_the_langchain_class_gives_the_offline_rows():
    pairs = load_qqp(limit=300)
    with open_embedders(["offline", "langchain"], 1024) as embedders:
        offline, network = bench_qqp_embedders(pairs, embedders, [0.8, 0.9])
    assert [r.to_dict() for r in offline.rows] == [r.to_dict() for r in network.rows]
