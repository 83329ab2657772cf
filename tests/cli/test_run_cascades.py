"""`smart run` with cascades, from --config or --cascades, against the local fake server: the
cascades are routes of the run (probed, counted under their names), a step judged by logprobs
has its model asked for them (and only it), and a bad cascade fails before any call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smart_core.cli import app
from smart_core.policy import keys as K
from smart_core.stores import open_store
from smart_core.testing import FakeLLMServer, Prompt, Reply

REF, MINI = "openai:gpt-4o", "openai:gpt-4o-mini"
ENV = {"COLUMNS": "400", "NO_COLOR": "1", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
N = 40


def _label(prompt: Prompt) -> str:
    return "billing" if sum(map(ord, prompt.last_user_text)) % 5 else "bug"


def _mini(prompt: Prompt) -> Reply:
    label = _label(prompt)
    return Reply(label, confidence=0.97 if label == "billing" else 0.3)


def _setup(tmp_path: Path) -> Path:
    with (tmp_path / "items.jsonl").open("w") as fh:
        for i in range(N):
            fh.write(json.dumps({"id": f"t{i}", "text": f"ticket number {i}"}) + "\n")
    return tmp_path / "out.jsonl"


def _run(tmp_path: Path, server: FakeLLMServer, *extra: str):
    args = [
        "run", "--input", str(tmp_path / "items.jsonl"), "--prompt", "Label: {text}",
        "--reference", REF, "--candidates", MINI, "--epsilon", "0.1",
        "--comparator", "choice:billing,bug", "--output", str(tmp_path / "out.jsonl"),
        "--openai-base-url", server.openai_base_url, "--max-retries", "0", *extra,
    ]  # fmt: skip
    return CliRunner().invoke(app, args, env=ENV)


def _counters(tmp_path: Path) -> dict[str, float]:
    store = open_store(f"sqlite:///{tmp_path / 'out.jsonl.smart.db'}")
    try:
        return store.read("run")
    finally:
        store.close()


def test_cascades_from_the_config_file_with_a_logprob_step(tmp_path):
    _setup(tmp_path)
    route = "cascade:openai:gpt-4o-mini[logprob>=0.9]>ref"
    config = tmp_path / "smart.toml"
    config.write_text(
        "[run]\nconcurrency = 4\n\n[[run.cascades]]\n"
        'steps = [{model = "openai:gpt-4o-mini", scorer = "logprob", threshold = 0.9}]\n'
    )
    with FakeLLMServer({"gpt-4o": _label, "gpt-4o-mini": _mini}) as server:
        result = _run(tmp_path, server, "--config", str(config))
        asked = {(r.model, bool(r.body.get("logprobs"))) for r in server.requests}
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == N
    counters = _counters(tmp_path)
    assert counters.get(K.probes_of(route), 0) > 0  # measured on probes like a model
    assert counters.get(K.agreements(route), 0) == counters[K.probes_of(route)]  # billing only
    assert asked == {("gpt-4o-mini", True), ("gpt-4o", False)}


def test_cascades_auto_on_the_command_line(tmp_path):
    _setup(tmp_path)
    with FakeLLMServer({"gpt-4o": _label, "gpt-4o-mini": _label}) as server:
        result = _run(tmp_path, server, "--cascades", "auto", "--concurrency", "4")
        asked = {bool(r.body.get("logprobs")) for r in server.requests}
    assert result.exit_code == 0, result.output
    counters = _counters(tmp_path)
    for label in ("billing", "bug"):
        assert counters.get(K.probes_of(f"cascade:{MINI}[label={label}]>ref"), 0) > 0
    assert asked == {False}  # no logprob step: nobody is asked for them


def test_a_cascade_calling_an_unknown_model_fails_before_any_call(tmp_path):
    _setup(tmp_path)
    tables = tmp_path / "cascades.toml"
    tables.write_text('[[cascades]]\nsteps = [{model = "openai:gpt-5-nano", scorer = "logprob"}]\n')
    with FakeLLMServer({"gpt-4o": _label, "gpt-4o-mini": _label}) as server:
        result = _run(tmp_path, server, "--cascades", str(tables))
        missing = _run(tmp_path, server, "--cascades", str(tmp_path / "nope.toml"))
        calls = server.calls()
    assert result.exit_code != 0
    said = " ".join(result.output.split())
    assert "--cascades" in said and "openai:gpt-5-nano" in said and "not a candidate" in said
    assert calls == 0
    assert missing.exit_code != 0 and "give auto, auto+learned or a TOML file" in " ".join(
        missing.output.split()
    )


def test_auto_learned_trains_on_the_runs_first_items_and_report_reads_the_fit(tmp_path):
    pytest.importorskip("sklearn")
    _setup(tmp_path)
    tables = tmp_path / "cascades.toml"
    tables.write_text(
        '[[cascades]]\nsteps = [{model = "openai:gpt-4o-mini", scorer = "learned:train=15"}]\n'
    )
    with FakeLLMServer({"gpt-4o": _label, "gpt-4o-mini": _label}) as server:
        result = _run(tmp_path, server, "--cascades", str(tables), "--concurrency", "4")
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == N and sum(bool(x.get("training")) for x in lines) == 15
    counters = _counters(tmp_path)
    assert counters[K.TRAINED] == 15 and counters[K.REQUESTS] == N - 15
    shown = CliRunner().invoke(
        app, ["report", "--store", f"sqlite:///{tmp_path / 'out.jsonl.smart.db'}"], env=ENV
    )
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.output.split())
    assert f"cascade:{MINI}[learned@" in said and "15 trained the learned scorers" in said
