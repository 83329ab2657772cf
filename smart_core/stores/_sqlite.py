"""SQLite store: exact shared counters for several processes and threads on one machine.

Durability model. Every ``add`` is one ``BEGIN IMMEDIATE`` transaction that records the event id
and upserts all counters together, so a retried event is refused and a crash can never leave half
an event behind. The database runs in WAL mode with ``synchronous=NORMAL``: a committed
transaction survives the writing process being killed at any instant; on power loss or an OS
crash the last few commits may be lost, but never part of a transaction. Readers never block
writers (and vice versa), which keeps ``read`` in the tens of microseconds.

The answer cache (``cache_*``) lives in two more tables, ``answers`` and ``answer_counts``;
a write is one transaction (the entry, the expiry of old entries, the eviction beyond the size
limit and the entry count together), so a crash never leaves half an entry.

WAL needs shared memory between the processes, so the file must live on a local filesystem (not
NFS/SMB), and all writers must be on the same machine; use a network backend for a fleet.

Retention. Event ids are remembered for ``EventRetention.ttl_seconds`` (7 days by default) and at
most ``max_per_task`` (1,000,000) per task. Every ``compact_every``-th add of a store object also
deletes, inside its own transaction, its task's expired ids among the ``compact_batch`` oldest,
so the events table stays bounded without a background job and a crash never half-prunes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import sqlite3
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from ..errors import StoreError
from ._base import Store
from ._increments import clean_increments
from ._retention import DEFAULT_RETENTION, EventRetention

__all__ = ["SqliteStore"]

_T = TypeVar("_T")

# Bump when the table layout changes; stores written by a newer layout are refused.
# 2: events carry seq (order within a task) and at (unix time) for retention.
_SCHEMA_VERSION = 2

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS counters (
        task TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
        PRIMARY KEY (task, key)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS events (
        task TEXT NOT NULL, event_id TEXT NOT NULL,
        seq INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (task, event_id)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS meta (
        task TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (task, key)) WITHOUT ROWID""",
    # The answer cache (smart_core.cache); answer_counts keeps each task's entry count, so the
    # size limit is enforced on every write without counting the entries.
    """CREATE TABLE IF NOT EXISTS answers (
        task TEXT NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        expires_at REAL NOT NULL, PRIMARY KEY (task, scope, key))""",
    "CREATE INDEX IF NOT EXISTS answers_by_expiry ON answers (task, expires_at)",
    """CREATE TABLE IF NOT EXISTS answer_counts (
        task TEXT NOT NULL PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID""",
)

# Version 1 stores gain the retention columns; their ids count as written at the migration.
_MIGRATE_FROM_1 = (
    "ALTER TABLE events ADD COLUMN seq INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE events ADD COLUMN at REAL NOT NULL DEFAULT 0",
    "UPDATE events SET at = :now",
)
_INDEX_EVENTS = "CREATE INDEX IF NOT EXISTS events_by_seq ON events (task, seq)"

# Writers hold the write lock, so max(seq) + 1 is exact here (found through events_by_seq).
_INSERT_EVENT = (
    "INSERT OR IGNORE INTO events (task, event_id, seq, at) "
    "SELECT :task, :event, coalesce(max(seq), 0) + 1, :now FROM events WHERE task = :task"
)
# Among the task's ``batch`` oldest ids, delete those past the time window or the count cap.
_COMPACT = """DELETE FROM events
WHERE task = :task
  AND seq <= (SELECT max(seq) FROM (
        SELECT seq FROM events WHERE task = :task ORDER BY seq LIMIT :batch))
  AND (at < :cutoff OR seq <= (SELECT max(seq) FROM events WHERE task = :task) - :keep)"""
_UPSERT_COUNTER = (
    "INSERT INTO counters (task, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (task, key) DO UPDATE SET value = value + excluded.value"
)
_READ = "SELECT key, value FROM counters WHERE task = ?"
_TASKS = "SELECT task FROM counters UNION SELECT task FROM meta ORDER BY task"
_SET_META = (
    "INSERT INTO meta (task, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (task, key) DO UPDATE SET value = excluded.value"
)
_GET_META = "SELECT value FROM meta WHERE task = ? AND key = ?"

_CACHE_GET = "SELECT value, expires_at FROM answers WHERE task = ? AND scope = ? AND key = ?"
_CACHE_EXISTS = "SELECT 1 FROM answers WHERE task = ? AND scope = ? AND key = ?"
_CACHE_EXPIRE = "DELETE FROM answers WHERE task = ? AND expires_at <= ?"
_CACHE_UPSERT = (
    "INSERT INTO answers (task, scope, key, value, expires_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (task, scope, key) DO UPDATE SET value = excluded.value, "
    "expires_at = excluded.expires_at"
)
_CACHE_COUNT = (
    "INSERT INTO answer_counts (task, n) VALUES (?, ?) "
    "ON CONFLICT (task) DO UPDATE SET n = n + excluded.n RETURNING n"
)
_CACHE_EVICT = (
    "DELETE FROM answers WHERE rowid IN "
    "(SELECT rowid FROM answers WHERE task = ? ORDER BY expires_at LIMIT ?)"
)

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6

# Connections inherited through fork() belong to the parent process; SQLite forbids using or
# closing them in the child, so they are parked here and never touched again.
_INHERITED: list[object] = []

# os.getpid() is a system call; track the pid across forks instead, since it is checked per call.
_pid = os.getpid()


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    message = str(exc).lower()
    return "locked" in message or "busy" in message


class _Conn:
    """One thread's connection, with the lock that lets ``close`` shut it from another thread."""

    __slots__ = ("__weakref__", "conn", "lock", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.pid = _pid


class SqliteStore(Store):
    """Counters in a SQLite file shared by every process and thread on this machine.

    Open it with ``SqliteStore("state/smart.db")`` or ``open_store("sqlite:///state/smart.db")``
    (relative to the working directory; ``sqlite:////var/lib/smart.db`` is absolute). The path is
    resolved once at construction, missing parent directories are created, and each thread gets
    its own lazily opened connection. Busy databases are waited on for up to ``timeout`` seconds.
    ``retention`` sets how long event ids are remembered (see the module docstring).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        retention: EventRetention = DEFAULT_RETENTION,
    ) -> None:
        raw = os.fspath(path)
        if not raw or raw == ":memory:" or raw.startswith("file:"):
            raise StoreError(
                f"SqliteStore needs a file path, got {raw!r}; "
                "use open_store('memory://') for an in-process store"
            )
        self.path = Path(raw).expanduser().absolute()
        self.url = f"sqlite:///{self.path}"
        self._timeout = float(timeout)
        self._retention = retention
        self._writes = itertools.count(1)  # next() is atomic under the GIL
        self._local = threading.local()
        self._conns: weakref.WeakSet[_Conn] = weakref.WeakSet()
        self._registry_lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._open_error(exc) from exc
        self._init_schema()

    # -- connections -------------------------------------------------------------------------

    def _open_error(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"cannot open SQLite store at {self.path}: {exc}. Check that the directory exists or "
            "can be created, is writable, is on a local filesystem, and that the path is not a "
            "directory or a non-SQLite file; or pass another path (sqlite:///path/to/smart.db)."
        )

    def _connect(self) -> _Conn:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._timeout,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,  # guarded by _Conn.lock; only close() crosses threads
                cached_statements=64,
            )
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise self._open_error(exc) from exc
        return _Conn(conn)

    def _handle(self) -> _Conn:
        handle: _Conn | None = getattr(self._local, "handle", None)
        if handle is not None and handle.pid == _pid:
            return handle
        with self._registry_lock:
            if self._closed:
                raise StoreError(f"SqliteStore at {self.path} is closed; open a new store")
            if handle is not None:  # created before a fork: the parent's, not ours
                _INHERITED.append(handle)
            handle = self._connect()
            self._conns.add(handle)
        self._local.handle = handle
        return handle

    def _run(self, work: Callable[[sqlite3.Connection], _T], *, write: bool) -> _T:
        """Run ``work`` in one transaction, retrying the whole of it while the database is busy.

        A retry is safe because a transaction that failed with SQLITE_BUSY committed nothing.
        """
        deadline: float | None = None
        delay = 0.001
        while True:
            handle = self._handle()
            with handle.lock:
                if self._closed:
                    raise StoreError(f"SqliteStore at {self.path} is closed; open a new store")
                conn = handle.conn
                try:
                    if write:
                        conn.execute("BEGIN IMMEDIATE")
                    result = work(conn)
                    if conn.in_transaction:
                        conn.execute("COMMIT")
                    return result
                except sqlite3.Error as exc:
                    self._rollback(conn)
                    if not _is_busy(exc):
                        raise StoreError(f"SQLite store at {self.path} failed: {exc}") from exc
                    error: sqlite3.Error = exc
                except BaseException:
                    self._rollback(conn)
                    raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + self._timeout
            if now >= deadline:
                raise StoreError(
                    f"SQLite store at {self.path} stayed locked for more than {self._timeout:g} s "
                    f"({error}); another process may hold a long transaction"
                ) from error
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.1)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _init_schema(self) -> None:
        def wal(conn: sqlite3.Connection) -> str:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()

        def create(conn: sqlite3.Connection) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise StoreError(
                    f"SQLite store at {self.path} has schema version {version}, newer than this "
                    f"smart_core understands ({_SCHEMA_VERSION}); upgrade smart_core"
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            if version == 1:
                for statement in _MIGRATE_FROM_1:
                    conn.execute(statement, {"now": time.time()})
            conn.execute(_INDEX_EVENTS)
            if version < _SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

        try:
            mode = self._run(wal, write=False)
            self._run(create, write=True)
        except StoreError as exc:
            self.close()
            if isinstance(exc.__cause__, sqlite3.Error) and not _is_busy(exc.__cause__):
                raise self._open_error(exc.__cause__) from exc.__cause__
            raise
        if mode != "wal":
            warnings.warn(
                f"SQLite store at {self.path} could not switch to WAL mode (got {mode!r}); it "
                "stays correct but readers and writers block each other. Use a local filesystem.",
                RuntimeWarning,
                stacklevel=3,
            )

    # -- Store interface -----------------------------------------------------------------------

    def add(
        self, task: str, increments: Mapping[str, float], *, event_id: str | None = None
    ) -> bool:
        rows = [(task, key, value) for key, value in clean_increments(increments)]
        if event_id is None and not rows:
            if self._closed:
                raise StoreError(f"SqliteStore at {self.path} is closed; open a new store")
            return True
        compact = event_id is not None and next(self._writes) % self._retention.compact_every == 0

        def work(conn: sqlite3.Connection) -> bool:
            if event_id is not None:
                now = time.time()
                event = {"task": task, "event": event_id, "now": now}
                if conn.execute(_INSERT_EVENT, event).rowcount == 0:
                    conn.execute("ROLLBACK")  # seen before: nothing was written
                    return False
                if compact:
                    conn.execute(_COMPACT, self._compact_params(task, now))
            if rows:
                conn.executemany(_UPSERT_COUNTER, rows)
            return True

        return self._run(work, write=True)

    def _compact_params(self, task: str, now: float) -> dict[str, object]:
        return {
            "task": task,
            "batch": self._retention.compact_batch,
            "cutoff": now - self._retention.ttl_seconds,
            "keep": self._retention.max_per_task,
        }

    def read(self, task: str) -> dict[str, float]:
        # One statement in autocommit mode is one read transaction: a consistent WAL snapshot.
        return self._run(lambda conn: dict(conn.execute(_READ, (task,)).fetchall()), write=False)

    def tasks(self) -> list[str]:
        return self._run(lambda conn: [row[0] for row in conn.execute(_TASKS)], write=False)

    def set_meta(self, task: str, key: str, value: str) -> None:
        self._run(lambda conn: conn.execute(_SET_META, (task, key, str(value))), write=True)

    def get_meta(self, task: str, key: str) -> str | None:
        row = self._run(lambda conn: conn.execute(_GET_META, (task, key)).fetchone(), write=False)
        return None if row is None else row[0]

    def cache_get(self, task: str, scope: str, key: str, *, now: float) -> str | None:
        row = self._run(
            lambda conn: conn.execute(_CACHE_GET, (task, scope, key)).fetchone(), write=False
        )
        return None if row is None or row[1] <= now else row[0]

    def cache_put(
        self,
        task: str,
        scope: str,
        key: str,
        value: str,
        *,
        now: float,
        expires_at: float,
        max_entries: int,
    ) -> None:
        entry = (task, scope, key, str(value), float(expires_at))

        def work(conn: sqlite3.Connection) -> None:
            # One transaction: the entry, the expiry of old ones and the count move together.
            change = -conn.execute(_CACHE_EXPIRE, (task, now)).rowcount
            if conn.execute(_CACHE_EXISTS, (task, scope, key)).fetchone() is None:
                change += 1
            conn.execute(_CACHE_UPSERT, entry)
            n = conn.execute(_CACHE_COUNT, (task, change)).fetchone()[0]
            if n > max_entries:
                gone = conn.execute(_CACHE_EVICT, (task, n - max_entries)).rowcount
                conn.execute(_CACHE_COUNT, (task, -gone)).fetchone()

        self._run(work, write=True)

    def cache_size(self, task: str) -> int:
        sql = "SELECT count(*) FROM answers WHERE task = ?"
        return int(self._run(lambda conn: conn.execute(sql, (task,)).fetchone()[0], write=False))

    def cache_clear(self, task: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM answers WHERE task = ?", (task,))
            conn.execute("DELETE FROM answer_counts WHERE task = ?", (task,))

        self._run(work, write=True)

    def close(self) -> None:
        """Close every thread's connection; further use raises StoreError. Idempotent."""
        with self._registry_lock:
            self._closed = True
            handles = list(self._conns)
            self._conns = weakref.WeakSet()
        for handle in handles:
            if handle.pid != _pid:
                continue
            with handle.lock, contextlib.suppress(sqlite3.Error):
                handle.conn.close()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"
