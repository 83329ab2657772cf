"""`smart run --cache` against the local OpenAI-compatible server: repeats of two tenants x two
users served from the cache within their own namespace, the summary showing the hits and the
money saved; bad tenant/user fields and cache settings refused before any call."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from typer.testing import CliRunner

from smart_core.cli import app
from smart_core.testing import FakeLLMServer, Prompt

REF, MINI = "openai:gpt-4o", "openai:gpt-4o-mini"
ENV = {"COLUMNS": "400", "NO_COLOR": "1", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}


def _items(tmp_path: Path) -> dict[str, tuple[str, str, str]]:
    rows = [
        {"tenant": t, "user": u, "text": f"question {q}"}
        for t, u, q, _ in itertools.product(("acme", "globex"), ("ann", "bob"), range(4), range(3))
    ]
    random.Random(2).shuffle(rows)
    who = {}
    with (tmp_path / "items.jsonl").open("w") as fh:
        for i, row in enumerate(rows):
            row["id"] = f"t{i}"
            who[row["id"]] = (row["tenant"], row["user"], row["text"])
            fh.write(json.dumps(row) + "\n")
    return who


def _server() -> FakeLLMServer:
    counter = itertools.count()

    def unique(prompt: Prompt) -> str:  # each call's answer names that call only
        return f"answer-{next(counter)}"

    return FakeLLMServer({"gpt-4o": unique, "gpt-4o-mini": unique})


def _run(tmp_path: Path, server: FakeLLMServer, *extra: str):
    args = [
        "run", "--input", str(tmp_path / "items.jsonl"), "--prompt", "Answer: {text}",
        "--reference", REF, "--candidates", MINI, "--epsilon", "0.1",
        "--output", str(tmp_path / "out.jsonl"), "--openai-base-url", server.openai_base_url,
        "--max-retries", "0", *extra,
    ]  # fmt: skip
    return CliRunner().invoke(app, args, env=ENV)


def test_repeats_are_served_from_the_cache_of_their_tenant_and_user(tmp_path):
    who = _items(tmp_path)
    config = tmp_path / "smart.toml"
    config.write_text('[run]\ncache_answers = "per_user"\nconcurrency = 2\n')
    with _server() as server:
        result = _run(tmp_path, server, "--cache", "exact", "--config", str(config))
        calls = server.calls()
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == len(who)
    assert calls < len(who)  # the server saw fewer calls than items
    by_answer = {x["answer"]: x["id"] for x in lines if x["route"] != "cache:exact"}
    hits = [x for x in lines if x["route"] == "cache:exact"]
    assert hits
    for x in hits:  # each hit is the reference's answer to the same question, same tenant/user
        assert who[by_answer[x["answer"]]] == who[x["id"]]
    said = " ".join(result.output.split())
    assert f"answer cache: {len(hits)} hits" in said and "saved ~$" in said
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["cache"]["hits"] == len(hits) and report["cache"]["mode"] == "exact"


def test_a_bad_tenant_field_or_cache_setting_is_refused_before_any_call(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a", "text": "hi"}\n{"id": "b", "text": "yo", "tenant": 3.5}\n')
    config = tmp_path / "smart.toml"
    config.write_text('cache = "exact"\ncache_answers = "everyone"\n')
    with _server() as server:
        bad_field = _run(tmp_path, server, "--cache", "exact")
        bad_mode = _run(tmp_path, server, "--cache", "fuzzy")
        bad_answers = _run(tmp_path, server, "--config", str(config))
        calls = server.calls()
    assert calls == 0
    said = " ".join(bad_field.output.split())
    assert bad_field.exit_code != 0
    assert f"{path}:2" in said and "'tenant' must be a string, not float" in said
    assert bad_mode.exit_code != 0 and "--cache must be one of off, exact, semantic" in " ".join(
        bad_mode.output.split()
    )
    assert bad_answers.exit_code != 0 and "cache_answers must be shared" in " ".join(
        bad_answers.output.split()
    )
