"""Event ids are kept for a retention window only, so durable stores stay bounded in size.

Within the window a retried id is still refused; past it (too old, or too many newer ids of the
same task) it is forgotten and the counters are untouched. A long run of distinct ids keeps the
stored ids under the cap.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from smart_core.stores import EventRetention, SqliteStore, Store

__all__: list[str] = []

SHARED = ["sqlite", "redis", "postgres"]


def stored_ids(store: Store, task: str = "t") -> int:
    """How many event ids ``store`` keeps for ``task``, counted in its raw state."""
    kind = type(store).__name__
    if kind == "SqliteStore":
        with sqlite3.connect(store.path) as conn:  # type: ignore[attr-defined]
            return int(
                conn.execute("SELECT count(*) FROM events WHERE task = ?", (task,)).fetchone()[0]
            )
    if kind == "RedisStore":
        return int(store._client.zcard(f"smart:e:{task}"))  # type: ignore[attr-defined]
    return int(
        store._call(  # type: ignore[attr-defined]
            lambda conn: conn.execute(
                "SELECT count(*) FROM smart_events WHERE task = %s", (task,)
            ).fetchone()[0]
        )
    )


def test_retention_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        EventRetention(ttl_seconds=0)
    with pytest.raises(ValueError, match="max_per_task"):
        EventRetention(max_per_task=0)
    with pytest.raises(ValueError, match="compact_every"):
        EventRetention(compact_every=0)


@pytest.mark.parametrize("kind", SHARED)
def test_count_cap_forgets_oldest_ids_and_keeps_recent_ones(
    kind: str, store_factory: Callable[[str], Callable[..., Store]]
) -> None:
    store = store_factory(kind)(retention=EventRetention(max_per_task=10, compact_every=1))
    for i in range(100):
        assert store.add("t", {"n": 1}, event_id=f"e{i}")
        store.add("other", {"n": 1}, event_id=f"e{i}")
    assert stored_ids(store) <= 11
    assert not store.add("t", {"n": 1}, event_id="e99")  # recent: still idempotent
    assert not store.add("t", {"n": 1}, event_id="e95")
    assert store.add("t", {"n": 1}, event_id="e0")  # long pushed out: counted again
    assert store.read("t") == {"n": 101.0}  # forgetting ids never touched the counters
    assert store.read("other") == {"n": 100.0}


@pytest.mark.parametrize("kind", SHARED)
def test_time_window_forgets_old_ids(
    kind: str, store_factory: Callable[[str], Callable[..., Store]]
) -> None:
    store = store_factory(kind)(retention=EventRetention(ttl_seconds=1.0, compact_every=1))
    assert store.add("t", {"n": 1}, event_id="old")
    assert not store.add("t", {"n": 1}, event_id="old")  # inside the window
    time.sleep(1.5)
    assert store.add("t", {"n": 1}, event_id="new")  # this write prunes "old"
    assert not store.add("t", {"n": 1}, event_id="new")
    assert store.add("t", {"n": 1}, event_id="old")  # past the window: counted again
    assert store.read("t") == {"n": 3.0}
    assert stored_ids(store) == 2  # "new" and the second "old"


def test_sqlite_version_1_store_is_migrated_and_keeps_its_ids(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:  # the layout smart_core wrote before retention
        conn.executescript(
            """
            CREATE TABLE counters (task TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
                PRIMARY KEY (task, key)) WITHOUT ROWID;
            CREATE TABLE events (task TEXT NOT NULL, event_id TEXT NOT NULL,
                PRIMARY KEY (task, event_id)) WITHOUT ROWID;
            CREATE TABLE meta (task TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                PRIMARY KEY (task, key)) WITHOUT ROWID;
            INSERT INTO counters VALUES ('t', 'n', 2.0);
            INSERT INTO events VALUES ('t', 'e1'), ('t', 'e2');
            PRAGMA user_version = 1;
            """
        )
    with SqliteStore(path, retention=EventRetention(compact_every=1)) as store:
        assert not store.add("t", {"n": 1}, event_id="e1")  # remembered across the upgrade
        assert store.add("t", {"n": 1}, event_id="e3")
        assert not store.add("t", {"n": 1}, event_id="e2")  # not pruned as "ancient"
        assert store.read("t") == {"n": 3.0}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


@pytest.mark.slow
@pytest.mark.parametrize("kind", SHARED)
def test_state_stays_bounded_over_200k_distinct_ids(
    kind: str, store_factory: Callable[[str], Callable[..., Store]]
) -> None:
    cap, every = 1_000, 64
    store = store_factory(kind)(retention=EventRetention(max_per_task=cap, compact_every=every))
    threads_n, per_thread = 4, 50_000
    peaks: list[int] = []
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(per_thread):
                store.add("t", {"n": 1}, event_id=f"w{t}-{i}")
                if t == 0 and i % 5_000 == 4_999:
                    peaks.append(stored_ids(store))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=1_200)
    assert not errors, errors
    total = threads_n * per_thread
    assert store.read("t") == {"n": float(total)}
    peaks.append(stored_ids(store))
    # The cap plus what can be written between two pruning steps. PostgreSQL writers racing on
    # one task may share a seq (see _postgres.py), which stretches the cap by the share of
    # concurrent writes: about 1.3x with these four threads, never more than threads_n times.
    limit = cap + 2 * every + threads_n if kind != "postgres" else 2 * cap
    assert max(peaks) <= limit, peaks
    assert min(peaks) >= cap // 2  # still remembering the recent ids, not pruning everything
    if kind == "redis":  # one hash, one id set and the task set: no key per event
        assert store._client.dbsize() <= 3  # type: ignore[attr-defined]
