"""Shared stores (SQLite file, Redis, PostgreSQL) under load and faults, checked for exact totals.

Several processes write at once, some are killed with SIGKILL mid-write, and the Redis and
PostgreSQL servers are stopped and started during a run. Every event must be applied exactly
once: a single lost or doubled increment would void SMART's disagreement guarantee.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from smart_core.errors import StoreError
from smart_core.stores import Store
from smart_core.testing.servers import PostgresServer, RedisServer, ServerUnavailable

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

# Opens a store from a URL and constructor options, the way every worker below starts.
OPEN = """
import json, sys
from smart_core.stores import PostgresStore, RedisStore, SqliteStore

def open_store(url, options):
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///"):], **options)
    if url.startswith("redis://"):
        return RedisStore(url, **options)
    return PostgresStore(url, **options)
"""

# Waits for the go file so all workers write at once, adds the ids, prints how many were applied.
WORKER = (
    OPEN
    + """
import os, time
url, go, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
store = open_store(url, {})
while not os.path.exists(go):
    time.sleep(0.001)
print(sum(store.add("t", {"n": 1, "x": 2.5}, event_id=i) for i in ids))
store.close()
"""
)

# Adds c<tag>-0, c<tag>-1, ... as fast as it can until killed.
CRASHER = (
    OPEN
    + """
url, tag = sys.argv[1], sys.argv[2]
store = open_store(url, {})
store.add("t", {"n": 1, "x": 2}, event_id=f"c{tag}-0")
print("ready", flush=True)
i = 0
while True:
    i += 1
    store.add("t", {"n": 1, "x": 2}, event_id=f"c{tag}-{i}")
"""
)

# Adds ids 0 .. count-1, re-sending each one until the store takes it; prints the StoreErrors seen.
PERSISTENT = (
    OPEN
    + """
import time
url, count, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
store = open_store(url, options)
print("ready", flush=True)
errors = 0
for i in range(count):
    while True:
        try:
            store.add("t", {"n": 1, "x": 2}, event_id=f"p{i}")
            break
        except Exception as exc:
            assert type(exc).__name__ == "StoreError", repr(exc)
            errors += 1
            time.sleep(0.05)
print(errors, flush=True)
"""
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def event_ids(url: str, task: str = "t") -> set[str]:
    """Every event id the store at ``url`` remembers for ``task``, read from the raw state."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///") :]) as conn:
            rows = conn.execute("SELECT event_id FROM events WHERE task = ?", (task,))
            return {r[0] for r in rows}
    if url.startswith("redis://"):
        import redis

        with redis.Redis.from_url(url, decode_responses=True) as client:
            return set(client.zrange(f"smart:e:{task}", 0, -1))
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event_id FROM smart_events WHERE task = %s", (task,))
        return {r[0] for r in rows}


SHARED = ["sqlite", "redis", "postgres"]


@pytest.mark.parametrize("kind", SHARED)
def test_eight_processes_adding_with_repeated_ids_are_exact(
    kind: str,
    tmp_path: Path,
    shared_store_url: Callable[[str], str],
    store_factory: Callable[[str], Callable[..., Store]],
) -> None:
    url, go = shared_store_url(kind), tmp_path / "go"
    reader = store_factory(kind)()  # creates the tables before the workers race
    processes, per_process, shared = 8, 5_000, 500
    # Each process sends its own 4,500 ids and the same 500 shared ones as everybody else.
    batches = [
        [f"p{p}-{i}" for i in range(per_process - shared)] + [f"s{i}" for i in range(shared)]
        for p in range(processes)
    ]
    procs = [_spawn(WORKER, url, str(go), json.dumps(ids)) for ids in batches]
    time.sleep(1.0)
    go.touch()
    # Concurrent snapshots must be whole events: x == 2.5 n in every one.
    while any(p.poll() is None for p in procs):
        snap = reader.read("t")
        assert snap.get("x", 0.0) == 2.5 * snap.get("n", 0.0)
        time.sleep(0.01)
    applied = 0
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        applied += int(out)
    total = processes * (per_process - shared) + shared
    assert applied == total  # every repeat refused, whichever copy came first
    assert reader.read("t") == {"n": float(total), "x": 2.5 * total}
    assert len(event_ids(url)) == total


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("kind", SHARED)
def test_sigkill_mid_write_loses_and_doubles_nothing(
    kind: str,
    shared_store_url: Callable[[str], str],
    store_factory: Callable[[str], Callable[..., Store]],
) -> None:
    url = shared_store_url(kind)
    store = store_factory(kind)()
    crashers = [_spawn(CRASHER, url, str(tag)) for tag in range(3)]
    try:
        for proc in crashers:
            line = proc.stdout.readline() if proc.stdout else ""
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
        time.sleep(1.0)
    finally:
        for proc in crashers:
            proc.send_signal(signal.SIGKILL)
        for proc in crashers:
            proc.communicate(timeout=30)
    assert all(proc.returncode == -signal.SIGKILL for proc in crashers)

    recorded = event_ids(url)
    n = len(recorded)
    assert n > 3  # the writers made progress
    # Every recorded event was applied in full, and nothing was applied without its id.
    assert store.read("t") == {"n": float(n), "x": 2.0 * n}
    # Each writer wrote its ids in order, so it recorded exactly c<tag>-0 .. c<tag>-<last>.
    last = {
        tag: max(int(i.split("-")[1]) for i in recorded if i.startswith(f"c{tag}-"))
        for tag in range(3)
    }
    assert recorded == {f"c{tag}-{i}" for tag in range(3) for i in range(last[tag] + 1)}
    # Re-sending every id up to beyond where each writer died applies each missing one once.
    resent = [f"c{tag}-{i}" for tag in range(3) for i in range(last[tag] + 50)]
    applied = sum(store.add("t", {"n": 1, "x": 2}, event_id=i) for i in resent)
    assert applied == len(resent) - n
    assert store.read("t") == {"n": float(len(resent)), "x": 2.0 * len(resent)}


def _own_server(kind: str) -> RedisServer | PostgresServer:
    try:
        return (RedisServer() if kind == "redis" else PostgresServer()).start()
    except (ServerUnavailable, OSError) as exc:
        pytest.skip(f"no {kind} server: {exc}")


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_server_restart_mid_run_raises_then_reconnects_exactly(kind: str) -> None:
    server = _own_server(kind)  # its own server: stopping it must not disturb other tests
    try:
        from smart_core.stores import PostgresStore, RedisStore

        options = {"timeout": 1.0, "attempts": 2}
        opened = RedisStore if kind == "redis" else PostgresStore
        store = opened(server.url, **options)  # type: ignore[arg-type]
        count = 3_000
        writer = _spawn(PERSISTENT, server.url, str(count), json.dumps(options))
        assert (writer.stdout.readline() if writer.stdout else "").strip() == "ready"

        # Snapshots taken while the server is up are whole events, whatever happens around them.
        def consistent() -> None:
            snap = store.read("t")
            assert snap.get("x", 0.0) == 2.0 * snap.get("n", 0.0)

        while store.read("t").get("n", 0.0) < 300:
            consistent()
            time.sleep(0.01)
        server.stop()
        down_errors = 0
        for call in (
            lambda: store.add("t", {"n": 1, "x": 2}, event_id="during"),
            lambda: store.read("t"),
            lambda: store.tasks(),
        ):
            with pytest.raises(StoreError, match="unreachable") as info:
                call()
            assert server.url.split("@")[-1] in str(info.value)
            down_errors += 1
        time.sleep(1.0)
        server.start()

        # The same store object works again without being reopened.
        deadline = time.monotonic() + 30
        while True:
            try:
                before = store.read("t")
                break
            except StoreError:
                assert time.monotonic() < deadline, "the store did not reconnect within 30 s"
                time.sleep(0.1)
        assert before.get("x", 0.0) == 2.0 * before.get("n", 0.0)
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        assert int(out.strip().splitlines()[-1]) > 0  # the writer saw the outage as StoreError
        # "during" may or may not have been applied before the server went away; re-sending
        # it settles that, and everything else was applied exactly once.
        store.add("t", {"n": 1, "x": 2}, event_id="during")
        assert store.read("t") == {"n": float(count + 1), "x": 2.0 * (count + 1)}
        assert down_errors == 3
        store.close()
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_async_writers_during_load_are_exact(
    kind: str, store_factory: Callable[[str], Callable[..., Store]]
) -> None:
    import asyncio

    store = store_factory(kind)()
    ids = [f"a{i}" for i in range(2_000)]

    async def run() -> int:
        sem = asyncio.Semaphore(32)

        async def one(event: str) -> bool:
            async with sem:
                return await store.aadd("t", {"n": 1, "x": 2.5}, event_id=event)

        results = await asyncio.gather(*(one(i) for i in ids + ids[::3]))
        return sum(results)

    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(run())))
    thread.start()
    thread.join(timeout=300)
    assert results == [len(ids)]
    assert store.read("t") == {"n": float(len(ids)), "x": 2.5 * len(ids)}
