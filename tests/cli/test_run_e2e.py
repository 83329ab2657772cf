"""`smart run` end to end against the local OpenAI/Anthropic server: a real kill -9 and resume,
and a run under 429/500/timeout faults; no item is lost, duplicated or paid for twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smart_core.cli import app
from smart_core.jobs.demo import _PROMPT, make_workload, responders
from smart_core.testing import Behaviour, FakeLLMServer, Fault

REF, MINI, HAIKU = "openai:gpt-4o", "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"
N = 240


def _write_items(path: Path, n: int) -> list[str]:
    items = make_workload(n, seed=3)
    with path.open("w") as fh:
        for it in items:
            fh.write(json.dumps({"id": it.id, "text": it.text}) + "\n")
    return [it.id for it in items]


def _args(tmp_path: Path, server: FakeLLMServer, *extra: str) -> list[str]:
    return [
        "run",
        "--input",
        str(tmp_path / "items.jsonl"),
        "--prompt",
        _PROMPT,
        "--reference",
        REF,
        "--candidates",
        f"{MINI},{HAIKU}",
        "--epsilon",
        "0.1",
        "--comparator",
        "choice:billing,bug,feature,account",
        "--output",
        str(tmp_path / "out.jsonl"),
        "--openai-base-url",
        server.openai_base_url,
        "--anthropic-base-url",
        server.anthropic_base_url,
        *extra,
    ]


def _ticket(record) -> str:
    return record.prompt.last_user_text.split("Ticket ", 1)[1].split(":", 1)[0]


def _successes(server: FakeLLMServer) -> Counter[tuple[str, str]]:
    """Answered (HTTP 200) requests per (item, model): what a provider would bill."""
    return Counter((_ticket(r), r.model) for r in server.requests if r.status == 200)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _server(items: list[str], **behaviours) -> FakeLLMServer:
    models = responders(make_workload(len(items), seed=3))
    for name, b in behaviours.items():
        models[name] = Behaviour(models[name], **b)
    return FakeLLMServer(models)


@pytest.mark.slow
def test_kill_9_mid_run_then_resume(tmp_path):
    ids = _write_items(tmp_path / "items.jsonl", N)
    latency = {"latency": 0.01}
    with _server(ids, **{"gpt-4o": latency, "gpt-4o-mini": latency}) as server:
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
        cmd = [sys.executable, "-c", "from smart_core.cli import main; main()"]
        args = _args(tmp_path, server, "--concurrency", "8")
        log = (tmp_path / "first-run.log").open("wb")  # a file: a full pipe would block it
        proc = subprocess.Popen([*cmd, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        out = tmp_path / "out.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= N // 3:
                break
            assert proc.poll() is None, (tmp_path / "first-run.log").read_text()
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        assert proc.returncode == -signal.SIGKILL
        state = sqlite3.connect(tmp_path / "out.jsonl.smart.db")
        done_before = {r[0] for r in state.execute("SELECT item FROM run_done")}
        saved_before = {tuple(r) for r in state.execute("SELECT item, model FROM run_answers")}
        state.close()
        assert N // 3 <= len(done_before) < N, "the kill must land mid-run"
        before = Counter((_ticket(r), r.model) for r in server.requests)

        resumed = subprocess.run([*cmd, *args], env=env, capture_output=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr.decode()
        after = Counter((_ticket(r), r.model) for r in server.requests)

    lines = _lines(out)
    assert [x["id"] for x in lines] == ids  # every item, once, in input order
    new = after - before
    # Items finished before the kill were not asked again, by any model.
    assert not [key for key in new if key[0] in done_before]
    # An answer saved before the kill was never bought again.
    assert not [key for key in new if key in saved_before]
    # Only calls cut off by the kill (at most one per item in flight and model) were repeated.
    paid = _successes(server)
    twice = [key for key, n in paid.items() if n > 1]
    assert all(n <= 2 for n in paid.values())
    assert len({item for item, _ in twice}) <= 8  # --concurrency 8
    print(
        f"kill -9 after {len(done_before)}/{N} items finished; requests before "
        f"{sum(before.values())}, after resume {sum(new.values())}; (item, model) answered "
        f"twice: {len(twice)} (calls in flight at the kill)"
    )
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["done"] == N and report["resumed"] == len(done_before)
    assert report["ledger"]["requests"] == N
    assert (tmp_path / "out.png").stat().st_size > 10_000
    assert b"items" in resumed.stdout


@pytest.mark.slow
def test_faults_lose_nothing_and_pay_nothing_twice(tmp_path):
    ids = _write_items(tmp_path / "items.jsonl", 150)
    faults = [
        Fault("rate_limit", rate=0.08, seed=1, retry_after=0.05),
        Fault("server_error", rate=0.08, seed=2),
        Fault("timeout", rate=0.03, seed=3, hang=1.0),
    ]
    with _server(
        ids, **{"gpt-4o": {"faults": faults}, "gpt-4o-mini": {"faults": faults}}
    ) as server:
        result = CliRunner().invoke(
            app,
            _args(tmp_path, server, "--timeout", "0.3", "--max-retries", "6", "--json"),
            env={"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""},
        )
        assert result.exit_code == 0, result.output
        faulted = Counter(r.fault for r in server.requests if r.fault)
        paid = _successes(server)
    assert faulted["rate_limit"] > 0 and faulted["server_error"] > 0 and faulted["timeout"] > 0
    lines = _lines(tmp_path / "out.jsonl")
    assert [x["id"] for x in lines] == ids
    assert max(paid.values()) == 1  # no (item, model) answered twice
    assert {item for item, _ in paid} == set(ids)
    doc = json.loads(result.stdout)
    assert doc["failed"] == {} and doc["done"] == 150
    print(
        f"faults injected: {dict(faulted)}; requests {sum(faulted.values()) + sum(paid.values())}"
    )


def test_run_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    _write_items(tmp_path / "items.jsonl", 5)
    base = ["run", "--input", str(tmp_path / "items.jsonl"), "--prompt", "x {text}"]
    base += ["--epsilon", "0.1", "--output", str(tmp_path / "o.jsonl")]
    runner = CliRunner()
    res = runner.invoke(app, [*base, "--reference", "gpt-4o", "--candidates", MINI])
    assert (
        res.exit_code == 2
        and "--reference" in " ".join(res.output.split())
        and "openai:gpt-4o-mini" in " ".join(res.output.split())
    )
    res = runner.invoke(app, [*base, "--reference", REF, "--candidates", MINI])
    assert res.exit_code == 2 and "OPENAI_API_KEY" in " ".join(res.output.split())
    res = runner.invoke(app, ["run", "--input", str(tmp_path / "items.jsonl")])
    assert res.exit_code == 2 and "missing --prompt" in " ".join(res.output.split())
    (tmp_path / "bad.toml").write_text("epsilon = 0.1\nepsilom = 0.2\n")
    res = runner.invoke(app, ["run", "--config", str(tmp_path / "bad.toml")])
    assert res.exit_code == 2 and "unknown keys ['epsilom']" in " ".join(res.output.split())


def test_config_file(tmp_path):
    ids = _write_items(tmp_path / "items.jsonl", 40)
    prompt = json.dumps(_PROMPT)  # a JSON string is a valid TOML basic string
    with _server(ids) as server:
        (tmp_path / "smart.toml").write_text(
            f"""
input = "{tmp_path / "items.jsonl"}"
prompt = {prompt}
reference = "{REF}"
candidates = ["{MINI}"]
epsilon = 0.2
output = "{tmp_path / "cfg.jsonl"}"
comparator = "choice:billing,bug,feature,account"
[base_urls]
openai = "{server.openai_base_url}"
"""
        )
        res = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "smart.toml")])
    assert res.exit_code == 0, res.output
    assert [x["id"] for x in _lines(tmp_path / "cfg.jsonl")] == ids
