"""SqliteStore under real concurrency: several processes, several threads, and a SIGKILL mid-write.

These tests check exact totals, not approximate ones: a single lost or double-counted increment
would void SMART's disagreement guarantee.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from smart_core.errors import StoreError
from smart_core.stores import SqliteStore

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]

# Opens the store (racing the other workers to create it), waits for the go file so all workers
# write at once, adds the given event ids and prints how many were accepted.
WORKER = """
import json, os, sys, time
from smart_core.stores import SqliteStore
path, go, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
store = SqliteStore(path)
while not os.path.exists(go):
    time.sleep(0.001)
accepted = sum(store.add("t", {"n": 1, "x": 2.5}, event_id=i) for i in ids)
store.close()
print(accepted)
"""

# Adds events e<start>, e<start+1>, ... as fast as it can until killed.
CRASHER = """
import sys
from smart_core.stores import SqliteStore
store = SqliteStore(sys.argv[1])
i = int(sys.argv[2])
store.add("t", {"n": 1, "x": 2}, event_id=f"e{i}")
print("ready", flush=True)
while True:
    i += 1
    store.add("t", {"n": 1, "x": 2}, event_id=f"e{i}")
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _event_ids(path: Path, task: str = "t") -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM events WHERE task = ?", (task,))]


@pytest.mark.slow
def test_multiprocess_adds_are_exact(tmp_path: Path) -> None:
    path, go = tmp_path / "shared.db", tmp_path / "go"
    per_process, processes, duplicates = 300, 6, 50
    batches = [[f"p{p}-{i}" for i in range(per_process)] for p in range(processes)]
    batches.append([f"p{p}-{i}" for p in range(processes) for i in range(duplicates // processes)])
    batches[-1] += [f"p0-{i}" for i in range(duplicates - len(batches[-1]))]
    assert len(batches[-1]) == duplicates
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(go), json.dumps(ids)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ids in batches
    ]
    while not path.exists():  # let the workers race to create the database
        time.sleep(0.005)
    time.sleep(0.3)
    go.touch()

    # Read concurrently: every snapshot must be internally consistent (x == 2.5 * n).
    with SqliteStore(path) as reader:
        while any(p.poll() is None for p in procs):
            snap = reader.read("t")
            assert snap.get("x", 0.0) == 2.5 * snap.get("n", 0.0)
        accepted = 0
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            accepted += int(out)
        total = per_process * processes
        snap = reader.read("t")
        assert accepted == total  # every duplicate was refused, whichever copy came first
        assert snap == {"n": float(total), "x": 2.5 * total}
    assert len(_event_ids(path)) == total


def test_multithread_adds_are_exact(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "threads.db")
    threads_n, per_thread = 8, 200
    batches = [[f"t{t}-{i}" for i in range(per_thread)] for t in range(threads_n)]
    batches += [[f"t{t}-{i}" for i in range(0, per_thread, 4)] for t in range(2)]  # duplicates
    barrier = threading.Barrier(len(batches) + 1)
    accepted: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(ids: list[str]) -> None:
        try:
            barrier.wait()
            accepted.append(sum(store.add("t", {"n": 1, "x": 2.5}, event_id=i) for i in ids))
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            barrier.wait()
            while not done.is_set():
                snap = store.read("t")
                assert snap.get("x", 0.0) == 2.5 * snap.get("n", 0.0)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(ids,)) for ids in batches]
    check = threading.Thread(target=reader)
    for t in [*workers, check]:
        t.start()
    for t in workers:
        t.join(timeout=120)
    done.set()
    check.join(timeout=10)
    assert not errors, errors
    total = threads_n * per_thread
    assert sum(accepted) == total
    assert store.read("t") == {"n": float(total), "x": 2.5 * total}
    store.close()
    assert len(_event_ids(tmp_path / "threads.db")) == total


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_write_leaves_no_partial_event(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    start = 0
    for _round in range(3):  # later rounds also exercise recovery of a killed writer's WAL
        proc = subprocess.Popen(
            [sys.executable, "-c", CRASHER, str(path), str(start)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
            time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL

        with SqliteStore(path) as store:
            ids = _event_ids(path)
            snap = store.read("t")
            n = len(ids)
            assert n > start  # the writer made progress this round
            assert snap == {"n": float(n), "x": 2.0 * n}
            # Events are written in order, so the recorded ones are exactly e0 .. e<n-1>.
            assert sorted(ids) == sorted(f"e{i}" for i in range(n))
            assert not any(store.add("t", {"n": 1, "x": 2}, event_id=i) for i in ids)
            assert store.read("t") == snap
            start = n  # the next writer continues where this one died


def _fork_child(store: SqliteStore) -> None:
    if not store.add("t", {"n": 1}, event_id="child"):
        os._exit(3)
    os._exit(0)


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs fork start method"
)
def test_store_survives_fork(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "fork.db")
    store.add("t", {"n": 1}, event_id="parent")  # parent connection exists before the fork
    proc = multiprocessing.get_context("fork").Process(target=_fork_child, args=(store,))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert store.add("t", {"n": 1}, event_id="after") is True
    assert store.read("t") == {"n": 3.0}
    store.close()


def test_reopen_keeps_counters_and_events(tmp_path: Path) -> None:
    path = tmp_path / "persist.db"
    with SqliteStore(path) as store:
        store.add("t", {"n": 1, "x": 0.25}, event_id="e1")
        store.set_meta("t", "k", "v")
    with SqliteStore(path) as store:
        assert store.read("t") == {"n": 1.0, "x": 0.25}
        assert store.add("t", {"n": 1}, event_id="e1") is False
        assert store.get_meta("t", "k") == "v"
        assert store.tasks() == ["t"]


def test_wal_mode_and_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "deep.db"
    with SqliteStore(path):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_connections_per_thread_close_from_another_thread(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "close.db")
    ready, release = threading.Event(), threading.Event()
    seen: list[object] = []

    def worker() -> None:
        store.add("t", {"n": 1})  # opens this thread's own connection
        ready.set()
        release.wait(10)
        try:
            store.read("t")
        except StoreError as exc:
            seen.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    assert ready.wait(10)
    store.close()  # closes the worker's connection too
    release.set()
    thread.join(10)
    assert len(seen) == 1 and "closed" in str(seen[0])


def test_path_under_a_regular_file_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    bad = blocker / "sub" / "smart.db"
    with pytest.raises(StoreError) as info:
        SqliteStore(bad)
    assert str(bad) in str(info.value)
    assert "sqlite:///" in str(info.value)  # names the fix


def test_directory_as_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=re.escape(str(tmp_path))):
        SqliteStore(tmp_path)


def test_non_sqlite_file_is_a_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db"):
        SqliteStore(bad)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(StoreError, match="upgrade"):
        SqliteStore(path)
