"""The ``smart`` command line, through typer's CliRunner."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smart_core.cli import app

REF = "gpt-4o"
MINI = "gpt-4o-mini"
#: A wide console so rich does not wrap messages (paths are long).
ENV = {"COLUMNS": "400", "NO_COLOR": "1"}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def flat(text: str) -> str:
    """Output with all whitespace removed, so a wrapped line still matches."""
    return re.sub(r"\s+", "", text)


def stderr_of(result) -> str:
    try:
        return result.stderr
    except ValueError:  # stderr mixed into output
        return result.output


def replay_file(path: Path, n: int = 200) -> Path:
    """Two-option questions; the candidate agrees with the reference on 98 % of them."""
    rng = random.Random(5)
    lines = []
    for i in range(n):
        right = rng.choice("AB")
        wrong = "B" if right == "A" else "A"
        cand = wrong if rng.random() < 0.02 else right
        row = {
            "id": i,
            "outputs": {
                REF: {"text": f"Answer: {right}", "input_tokens": 400, "output_tokens": 3},
                MINI: {"text": cand, "input_tokens": 400, "output_tokens": 3},
            },
        }
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def invoke(runner: CliRunner, *args: str):
    return runner.invoke(app, list(args), env=ENV)


# -- help ---------------------------------------------------------------------------------------


def test_help_lists_the_commands(runner):
    """``--help`` lists replay and bench; ``bench --help`` lists paper and overhead."""
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    assert "replay" in result.output and "bench" in result.output
    bench = invoke(runner, "bench", "--help")
    assert bench.exit_code == 0
    assert "paper" in bench.output and "overhead" in bench.output


@pytest.mark.parametrize("command", ["replay", "run"])
def test_help_prints_brackets_as_written(runner, command):
    """Help text is not read as rich markup, which dropped "[[cascades]]" (the TOML table a
    user must write) from the ``--cascades`` option's help."""
    result = invoke(runner, command, "--help")
    assert result.exit_code == 0
    assert "[[cascades]]" in result.output


# -- replay -------------------------------------------------------------------------------------


def test_replay_json_prints_the_report(runner, tmp_path):
    """``replay --json`` prints one JSON document with the report's numbers."""
    path = replay_file(tmp_path / "log.jsonl")
    result = invoke(
        runner,
        "replay",
        str(path),
        "--reference",
        REF,
        "--epsilon",
        "0.1",
        "--comparator",
        "choice:A,B",
        "--orders",
        "3",
        "--json",
    )
    assert result.exit_code == 0, stderr_of(result)
    doc = json.loads(result.stdout)
    for key in ("reference_cost", "cost", "savings", "disagreement", "violation_rate", "orders"):
        assert key in doc
    assert len(doc["orders"]) == 3
    assert doc["reference"] == REF and doc["candidates"] == [MINI]
    assert doc["epsilon"] == 0.1 and doc["items"] == 200
    assert doc["comparator"].startswith("choice")
    assert doc["savings"] == pytest.approx(
        sorted(o["savings"] for o in doc["orders"])[1]
    )  # median of 3
    assert doc["disagreement"] <= 0.1
    assert 0.0 <= doc["violation_rate"] <= 1.0
    assert doc["reference_cost"] == pytest.approx(200 * (400 * 2.5 + 3 * 10.0) / 1e6)


def test_replay_text_mode_prints_the_summary(runner, tmp_path):
    """Without --json the table is followed by the 'median savings' line and the routes."""
    path = replay_file(tmp_path / "log.jsonl")
    result = invoke(
        runner,
        "replay",
        str(path),
        "--reference",
        REF,
        "--epsilon",
        "0.1",
        "--comparator",
        "choice:A,B",
        "--orders",
        "2",
    )
    assert result.exit_code == 0, stderr_of(result)
    assert "median savings" in result.stdout
    assert "routes:" in result.stdout
    assert "log.jsonl" in result.stdout  # table title


def test_replay_malformed_line_exits_2_with_the_line_number(runner, tmp_path):
    """A malformed line is a clean error (exit 2) naming file and line, not a traceback."""
    path = replay_file(tmp_path / "bad.jsonl", n=3)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("{oops\n")
    result = invoke(runner, "replay", str(path), "--reference", REF, "--epsilon", "0.1")
    assert result.exit_code == 2
    err = stderr_of(result)
    assert "bad.jsonl:4" in flat(err)
    assert "error" in err.lower()
    assert "Traceback" not in result.output


def test_replay_missing_file_exits_2(runner, tmp_path):
    result = invoke(
        runner, "replay", str(tmp_path / "nope.jsonl"), "--reference", REF, "--epsilon", "0.1"
    )
    assert result.exit_code == 2
    assert "nosuchfile" in flat(stderr_of(result))


def test_replay_bad_price_exits_2_and_shows_the_format(runner, tmp_path):
    """``--price`` must be MODEL=INPUT,OUTPUT; anything else exits 2 and shows that format."""
    path = replay_file(tmp_path / "log.jsonl", n=5)
    result = invoke(
        runner,
        "replay",
        str(path),
        "--reference",
        REF,
        "--epsilon",
        "0.1",
        "--price",
        "gpt-4o=cheap",
    )
    assert result.exit_code == 2
    assert "MODEL=INPUT,OUTPUT" in flat(stderr_of(result))


def test_replay_price_option_changes_the_reference_cost(runner, tmp_path):
    """A valid ``--price`` overrides the list price used for tokens."""
    path = replay_file(tmp_path / "log.jsonl", n=20)
    result = invoke(
        runner,
        "replay",
        str(path),
        "--reference",
        REF,
        "--epsilon",
        "0.1",
        "--orders",
        "1",
        "--price",
        "gpt-4o=1,2",
        "--json",
    )
    assert result.exit_code == 0, stderr_of(result)
    doc = json.loads(result.stdout)
    assert doc["reference_cost"] == pytest.approx(20 * (400 * 1.0 + 3 * 2.0) / 1e6)


def test_replay_unknown_reference_exits_2(runner, tmp_path):
    """A reference missing from the file is reported as an error, exit 2."""
    path = replay_file(tmp_path / "log.jsonl", n=5)
    result = invoke(runner, "replay", str(path), "--reference", "gpt-5", "--epsilon", "0.1")
    assert result.exit_code == 2
    assert "gpt-5" in stderr_of(result)


def test_replay_unpriced_model_exits_2_and_suggests_price(runner, tmp_path):
    """A tokens-only model without a known price is a clean error that suggests --price."""
    row = {
        "id": 1,
        "outputs": {
            REF: {"text": "A", "input_tokens": 10, "output_tokens": 1},
            "my-model": {"text": "A", "input_tokens": 10, "output_tokens": 1},
        },
    }
    path = tmp_path / "unpriced.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    result = invoke(runner, "replay", str(path), "--reference", REF, "--epsilon", "0.1")
    assert result.exit_code == 2
    err = flat(stderr_of(result))
    assert "my-model" in err and "--price" in err


def test_replay_rejects_zero_orders(runner, tmp_path):
    path = replay_file(tmp_path / "log.jsonl", n=5)
    result = invoke(
        runner, "replay", str(path), "--reference", REF, "--epsilon", "0.1", "--orders", "0"
    )
    assert result.exit_code == 2
    assert "--orders" in stderr_of(result)


# -- bench --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_paper_json_rows(runner):
    """``bench paper --json`` gives one row per point with savings, violations and the oracle."""
    result = invoke(
        runner,
        "bench",
        "paper",
        "--seeds",
        "1",
        "--datasets",
        "sms_spam",
        "--epsilons",
        "0.2",
        "--json",
    )
    assert result.exit_code == 0, stderr_of(result)
    doc = json.loads(result.stdout)
    assert doc["seeds"] == 1
    (row,) = doc["rows"]
    assert row["dataset"] == "sms_spam" and row["epsilon"] == 0.2
    assert row["savings"] > 1
    assert row["violation_rate"] in (0.0, 1.0)
    assert row["oracle_savings"] > 1
    assert doc["geometric_mean_savings"] == pytest.approx(row["savings"])


def test_bench_paper_unknown_dataset_exits_2(runner):
    result = invoke(runner, "bench", "paper", "--datasets", "mnist", "--seeds", "1")
    assert result.exit_code == 2
    err = flat(stderr_of(result))
    assert "mnist" in err and "sms_spam" in err


@pytest.mark.slow
def test_bench_overhead_json_reports_both_stores(runner):
    """``bench overhead --json`` measures the memory and SQLite stores, with positive timings."""
    result = invoke(runner, "bench", "overhead", "--requests", "200", "--json")
    assert result.exit_code == 0, stderr_of(result)
    doc = json.loads(result.stdout)
    assert [r["store"] for r in doc] == ["memory", "sqlite"]
    for r in doc:
        assert r["requests"] == 200
        assert r["decide_median_us"] > 0
        assert r["decide_p99_us"] >= r["decide_median_us"]
        assert r["request_median_us"] > 0


@pytest.mark.slow
def test_bench_drift_json_reports_each_drop_with_and_without_detection(runner):
    result = invoke(
        runner,
        "bench",
        "drift",
        "--runs",
        "1",
        "--requests",
        "2000",
        "--drops",
        "0,0.1",
        "--audit-rate",
        "0.05",
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [row["drop"] for row in doc["rows"]] == [0.0, 0.1]
    assert set(doc["rows"][0]["savings"]) == {"on", "off"}
    assert doc["audit_rate"] == 0.05 and doc["requests"] == 2000


def test_bench_drift_refuses_bad_drops_and_an_incomplete_logged_shift(runner, tmp_path):
    bad = invoke(runner, "bench", "drift", "--drops", "some")
    assert bad.exit_code == 2 and "--drops" in bad.output
    half = invoke(runner, "bench", "drift", "--logged", f"{tmp_path}/a.jsonl")
    assert half.exit_code == 2 and "--reference" in half.output


def test_bench_decisions_times_each_mode_candidates_and_probes(runner):
    result = invoke(
        runner,
        "bench",
        "decisions",
        "--candidates",
        "2,3",
        "--probes",
        "100",
        "--decisions",
        "5",
        "--json",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["mode"], r["candidates"]) for r in rows] == [
        ("online", 2),
        ("online", 3),
        ("batch", 2),
        ("batch", 3),
    ]
    assert all(r["median_us"] > 0 for r in rows)
    bad = invoke(runner, "bench", "decisions", "--candidates", "two")
    assert bad.exit_code == 2 and "--candidates" in bad.output
