"""`smart run --store redis://...` and `--store postgresql://...` end to end against the local
OpenAI/Anthropic server: a real kill -9 mid-run, then the same command resumes from the server;
every item is answered exactly once, the counters are exact, and `--restart` clears only its run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_run_e2e import HAIKU, MINI, REF, _args, _lines, _server, _ticket, _write_items

from smart_core.jobs.batch_run import BatchRun, load_items
from smart_core.policy import keys as K
from smart_core.stores import open_run_state, open_store
from smart_core.testing.servers import PostgresServer, RedisServer, ServerUnavailable

pytestmark = pytest.mark.slow

N = 240
CMD = [sys.executable, "-c", "from smart_core.cli import main; main()"]


@pytest.fixture(scope="module", params=["redis", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    try:
        server = (RedisServer if request.param == "redis" else PostgresServer)().start()
    except (ServerUnavailable, OSError) as exc:
        pytest.skip(f"no {request.param} server: {exc}")
    yield server.url
    server.close()


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}


def _task(tmp_path: Path, store: str, *, epsilon: float = 0.1) -> str:
    """The task ``smart run`` keeps this run under (what the CLI builds from its arguments)."""
    from smart_core.jobs.demo import _PROMPT

    run = BatchRun(
        input=tmp_path / "items.jsonl",
        prompt=_PROMPT,
        reference=REF,
        candidates=[MINI, "anthropic:claude-haiku-4-5"],
        epsilon=epsilon,
        output=tmp_path / "out.jsonl",
        comparator="choice:billing,bug,feature,account",
        store=store,
    )
    return run.store_task(run.key(load_items(run.input)))


def _counters(store_url: str, task: str) -> dict[str, float]:
    store = open_store(store_url)
    try:
        return store.read(task)
    finally:
        store.close()


def test_kill_9_mid_run_then_resume_from_the_shared_store(tmp_path, store_url):
    ids = _write_items(tmp_path / "items.jsonl", N)
    assert HAIKU == "anthropic:claude-haiku-4-5"
    latency = {"latency": 0.01}
    with _server(ids, **{"gpt-4o": latency, "gpt-4o-mini": latency}) as server:
        args = _args(tmp_path, server, "--concurrency", "8", "--store", store_url)
        log = (tmp_path / "first-run.log").open("wb")
        proc = subprocess.Popen([*CMD, *args], env=_env(), stdout=log, stderr=subprocess.STDOUT)
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
        task = _task(tmp_path, store_url)
        state = open_run_state(store_url, task)
        done_before = set(state.done())
        saved_before = {(i, m) for i, by in state.answers().items() for m in by}
        state.close()
        assert N // 3 <= len(done_before) < N, "the kill must land mid-run"
        before = Counter((_ticket(r), r.model) for r in server.requests)

        out.unlink()  # resumed elsewhere: the server holds the state, not the local file
        resumed = subprocess.run([*CMD, *args], env=_env(), capture_output=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr.decode()
        after = Counter((_ticket(r), r.model) for r in server.requests)

    assert [x["id"] for x in _lines(out)] == ids  # every item, once, in input order
    new = after - before
    assert not [key for key in new if key[0] in done_before]
    assert not [key for key in new if key in saved_before]
    counters = _counters(store_url, task)
    assert counters[K.REQUESTS] == N
    assert sum(counters.get(K.routed(r), 0.0) for r in (REF, MINI, HAIKU)) == N
    for model in (MINI, HAIKU):
        assert counters.get(K.probes_open(model), 0.0) == 0.0
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["done"] == N and report["resumed"] == len(done_before)
    assert report["ledger"]["requests"] == N
    assert store_url.split("://")[0] in report["state"]
    assert (tmp_path / "out.png").stat().st_size > 10_000


def test_restart_clears_only_its_own_run(tmp_path, store_url):
    ids = _write_items(tmp_path / "items.jsonl", 40)
    with _server(ids) as server:
        args = _args(tmp_path, server, "--store", store_url)
        first = subprocess.run([*CMD, *args], env=_env(), capture_output=True, timeout=120)
        assert first.returncode == 0, first.stderr.decode()
        other = [*args[: args.index("--epsilon") + 1], "0.2", *args[args.index("--epsilon") + 2 :]]
        other[other.index("--output") + 1] = str(tmp_path / "other.jsonl")
        second = subprocess.run([*CMD, *other], env=_env(), capture_output=True, timeout=120)
        assert second.returncode == 0, second.stderr.decode()
        kept = _counters(store_url, _task(tmp_path, store_url, epsilon=0.2))
        redo = subprocess.run(
            [*CMD, *args, "--restart", "--json"], env=_env(), capture_output=True, timeout=120
        )
        assert redo.returncode == 0, redo.stderr.decode()
    report = json.loads(redo.stdout)
    assert report["resumed"] == 0 and report["answered_now"] == 40
    assert _counters(store_url, _task(tmp_path, store_url))[K.REQUESTS] == 40
    assert _counters(store_url, _task(tmp_path, store_url, epsilon=0.2)) == kept
    assert [x["id"] for x in _lines(tmp_path / "out.jsonl")] == ids
