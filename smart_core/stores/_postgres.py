"""PostgreSQL store: exact shared counters for a fleet of workers on any number of machines.

Tables (created on first open, in the database the URL names): ``smart_counters(task, key,
value)``, ``smart_events(task, event_id, seq, at)`` and ``smart_meta(task, key, value)``; the
answer cache adds ``smart_answers(task, scope, key, value, expires_at)`` and
``smart_answer_counts(task, n)``.

Atomicity. Every ``add`` is one statement, hence one transaction: an ``INSERT ... ON CONFLICT DO
NOTHING`` of the event id, then, only if that inserted a row, ``INSERT ... ON CONFLICT DO UPDATE
SET value = value + EXCLUDED.value`` of every counter, keys in sorted order so that concurrent
writers lock rows in the same order and cannot deadlock. A second writer of the same event id
waits for the first to commit and then inserts nothing. A worker killed mid-call leaves either the
whole event (committed) or nothing (rolled back by the server). Durability is PostgreSQL's: with
the default ``synchronous_commit = on`` a committed event survives a server crash.

Retries. An ``add`` without an event id gets a private one, so every call is idempotent and is
re-sent safely after a dropped connection or a deadlock/serialization failure (a reply lost after
the commit cannot double-count). Calls are tried ``attempts`` times; if the server stays down they
raise ``StoreError``, and the connection pool reconnects by itself once it is back.

Retention. Event ids are remembered for ``EventRetention.ttl_seconds`` (7 days by default) and
about ``max_per_task`` (1,000,000) per task: writers racing on one task may share a sequence
number, so under heavy concurrent writes a task keeps somewhat more (1.3 times as many measured
with four busy writers; at most the number of simultaneous writers times as many). Every
``compact_every``-th add of a process deletes its task's expired ids among the ``compact_batch``
oldest, in a transaction of its own after the add committed, so pruning never touches an event
being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ..errors import StoreError
from ..task.redaction import redact_url
from ._base import Store, ThreadedCacheCalls
from ._increments import clean_increments
from ._loop_thread import LoopThread
from ._retention import DEFAULT_RETENTION, EventRetention

try:
    import psycopg
    import psycopg.conninfo
    import psycopg_pool
except ImportError:  # pragma: no cover - psycopg is a dependency; this guards partial installs
    psycopg = None  # type: ignore[assignment]

__all__ = ["PostgresStore"]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

# Serialises table creation between processes opening a new database at the same moment
# (concurrent CREATE TABLE IF NOT EXISTS can otherwise fail on the catalog's unique index).
_SCHEMA_LOCK = 0x534D415254  # "SMART"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS smart_counters (
        task text NOT NULL, key text NOT NULL, value double precision NOT NULL,
        PRIMARY KEY (task, key))""",
    """CREATE TABLE IF NOT EXISTS smart_events (
        task text NOT NULL, event_id text NOT NULL, seq bigint NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (task, event_id))""",
    "CREATE INDEX IF NOT EXISTS smart_events_by_seq ON smart_events (task, seq)",
    """CREATE TABLE IF NOT EXISTS smart_meta (
        task text NOT NULL, key text NOT NULL, value text NOT NULL,
        PRIMARY KEY (task, key))""",
    """CREATE TABLE IF NOT EXISTS smart_answers (
        task text NOT NULL, scope text NOT NULL, key text NOT NULL, value text NOT NULL,
        expires_at double precision NOT NULL, PRIMARY KEY (task, scope, key))""",
    "CREATE INDEX IF NOT EXISTS smart_answers_by_expiry ON smart_answers (task, expires_at)",
    """CREATE TABLE IF NOT EXISTS smart_answer_counts (
        task text NOT NULL PRIMARY KEY, n bigint NOT NULL)""",
)

# The answer cache. A write runs in one transaction that first locks the task's count row, so
# the writers of one task take turns and the count stays exact; the entry, the expiry of old
# entries and the eviction beyond the limit commit together or not at all.
_CACHE_LOCK = (
    "INSERT INTO smart_answer_counts (task, n) VALUES (%(task)s, 0) "
    "ON CONFLICT (task) DO UPDATE SET n = smart_answer_counts.n RETURNING n"
)
_CACHE_EXPIRE = """
WITH gone AS (DELETE FROM smart_answers WHERE task = %(task)s AND expires_at <= %(now)s
              RETURNING 1)
SELECT count(*) FROM gone"""
_CACHE_UPSERT = """
INSERT INTO smart_answers AS a (task, scope, key, value, expires_at)
VALUES (%(task)s, %(scope)s, %(key)s, %(value)s, %(expires_at)s)
ON CONFLICT (task, scope, key)
DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
RETURNING (xmax = 0)"""
_CACHE_EVICT = """
WITH gone AS (DELETE FROM smart_answers WHERE (task, scope, key) IN (
    SELECT task, scope, key FROM smart_answers WHERE task = %(task)s
    ORDER BY expires_at LIMIT %(extra)s) RETURNING 1)
SELECT count(*) FROM gone"""
_CACHE_SET_COUNT = "UPDATE smart_answer_counts SET n = %(n)s WHERE task = %(task)s"
_CACHE_GET = (
    "SELECT value FROM smart_answers "
    "WHERE task = %s AND scope = %s AND key = %s AND expires_at > %s"
)

# The counters are written only if the event row was inserted; both happen in this one statement.
# seq orders a task's ids for retention; writers racing on one task may share a seq, which only
# makes the per-task cap approximate by the number of concurrent writers.
_ADD = """
WITH event AS (
    INSERT INTO smart_events (task, event_id, seq)
    SELECT %(task)s, %(event)s, coalesce(max(seq), 0) + 1 FROM smart_events WHERE task = %(task)s
    ON CONFLICT DO NOTHING
    RETURNING 1
), applied AS (
    INSERT INTO smart_counters AS c (task, key, value)
    SELECT %(task)s, u.k, u.v FROM unnest(%(keys)s::text[], %(values)s::float8[]) AS u(k, v)
    WHERE EXISTS (SELECT FROM event)
    ORDER BY u.k
    ON CONFLICT (task, key) DO UPDATE SET value = c.value + EXCLUDED.value
    RETURNING 1
)
SELECT EXISTS (SELECT FROM event)
"""

# Deletes, among the task's ``batch`` oldest ids, those past the time window or the count cap.
_COMPACT = """
DELETE FROM smart_events
WHERE task = %(task)s
  AND seq <= (SELECT max(o.seq) FROM (
        SELECT seq FROM smart_events WHERE task = %(task)s ORDER BY seq LIMIT %(batch)s) AS o)
  AND (at < now() - %(ttl)s * interval '1 second'
       OR seq <= (SELECT max(seq) FROM smart_events WHERE task = %(task)s) - %(keep)s)
"""

_READ = "SELECT key, value FROM smart_counters WHERE task = %s"
_TASKS = "SELECT task FROM smart_counters UNION SELECT task FROM smart_meta ORDER BY task"
_SET_META = (
    "INSERT INTO smart_meta (task, key, value) VALUES (%s, %s, %s) "
    "ON CONFLICT (task, key) DO UPDATE SET value = EXCLUDED.value"
)
_GET_META = "SELECT value FROM smart_meta WHERE task = %s AND key = %s"

# Ids the store makes up for adds that came without one (see "Retries" above).
_PRIVATE_ID = "smart-retry:"


def _describe(exc: BaseException) -> str:
    """The error's text on one line (libpq messages span several), with any password hidden."""
    return " ".join(redact_url(str(exc)).split())


def _require_client() -> None:
    if psycopg is None:
        raise StoreError(
            "the PostgreSQL store needs psycopg 3 and psycopg-pool; "
            "install them with: pip install 'psycopg[binary]>=3.2' psycopg-pool"
        )


class PostgresStore(ThreadedCacheCalls, Store):
    """Counters in a PostgreSQL database shared by every worker that opens the same URL.

    Open it with ``open_store("postgresql://user:password@host:5432/dbname")`` (``postgres://``
    works too; any libpq URI parameter such as ``?sslmode=require`` is passed on). ``url`` is the
    URL with its password replaced by ``***``. ``retention`` sets how long event ids are
    remembered (see the module docstring); ``timeout`` bounds connecting and waiting for a pooled
    connection, in seconds; ``pool_size`` caps the connections per process (and per event loop
    for the async calls).
    """

    async_inline = False

    def __init__(
        self,
        url: str,
        *,
        retention: EventRetention = DEFAULT_RETENTION,
        timeout: float = 5.0,
        attempts: int = 3,
        pool_size: int = 8,
    ) -> None:
        _require_client()
        self.url = redact_url(url)
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts!r}")
        try:
            psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreError(
                f"invalid PostgreSQL store URL {self.url}: {redact_url(str(exc))}; use "
                "postgresql://user:password@host[:port]/dbname"
            ) from None
        self._conninfo = url
        self._retention = retention
        self._timeout = float(timeout)
        self._attempts = attempts
        self._pool_size = pool_size
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,  # each statement is its own transaction; _ADD needs no more
            "connect_timeout": max(1, round(self._timeout)),
            "application_name": "smart",
        }
        self._writes = 0
        self._closed = False
        self._lock = threading.Lock()
        # The async pool lives on a loop of its own (see _loop_thread.py), made on first use.
        self._async_host: LoopThread | None = None
        self._async_pool: Any = None
        self._async_pid = 0
        self._init_schema()
        self._pid = os.getpid()
        self._pool = self._new_pool()

    # -- connections -------------------------------------------------------------------------

    def _pool_options(self) -> dict[str, Any]:
        return {
            "kwargs": self._connect_kwargs,
            "min_size": 1,
            "max_size": self._pool_size,
            "timeout": self._timeout,
            # Give up a reconnection round after this long, so that after a long outage the next
            # call starts a fresh attempt instead of waiting out a long back-off.
            "reconnect_timeout": max(10.0, self._timeout),
            "name": "smart-store",
        }

    def _new_pool(self) -> Any:
        pool = psycopg_pool.ConnectionPool(self._conninfo, open=False, **self._pool_options())
        pool.open(wait=False)
        return pool

    def _sync_pool(self) -> Any:
        self._check_open()
        if os.getpid() != self._pid:  # forked: the parent's connections are not ours to use
            with self._lock:
                if os.getpid() != self._pid:
                    self._pid = os.getpid()
                    self._pool = self._new_pool()
        return self._pool

    def _async_side(self) -> tuple[LoopThread, Any]:
        """The loop thread and async pool of this process, started on first use."""
        self._check_open()
        with self._lock:
            if self._async_host is None or self._async_pid != os.getpid():
                host = LoopThread("smart-postgres-async")
                pool = psycopg_pool.AsyncConnectionPool(
                    self._conninfo, open=False, **self._pool_options()
                )
                host.submit(pool.open(wait=False)).result(self._timeout)
                self._async_host, self._async_pool = host, pool
                self._async_pid = os.getpid()
            return self._async_host, self._async_pool

    def _init_schema(self) -> None:
        try:
            with (
                psycopg.connect(self._conninfo, **self._connect_kwargs) as conn,
                conn.transaction(),
            ):
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot open PostgreSQL store at {self.url}: {_describe(exc)}. "
                "Check that the server is running and reachable, that the database exists, and "
                "that the URL's user and password are right (the user needs CREATE on the "
                "database the first time, to make the smart_* tables)."
            ) from None

    # -- errors and retries ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"PostgresStore at {self.url} is closed; open a new store")

    def _unreachable(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"PostgreSQL store at {self.url} is unreachable after {self._attempts} attempt(s) "
            f"({type(exc).__name__}: {_describe(exc)}); check that the server is "
            "running and reachable from here. Nothing was applied twice: the call can be "
            "repeated once the server is back."
        )

    def _failed(self, exc: BaseException) -> StoreError:
        return StoreError(f"PostgreSQL store at {self.url} failed: {_describe(exc)}")

    @staticmethod
    def _transient(exc: BaseException) -> bool:
        # OperationalError covers lost connections, admin shutdown, deadlocks and serialization
        # failures; PoolTimeout means no connection could be had in time.
        return isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout)

    def _call(self, work: Callable[[Any], _T]) -> _T:
        """Run an idempotent ``work(connection)``, re-sending it while the server is failing."""
        for attempt in range(self._attempts):
            pool = self._sync_pool()
            try:
                with pool.connection() as conn:
                    return work(conn)
            except psycopg.Error as exc:
                if self._closed:
                    raise StoreError(f"PostgresStore at {self.url} is closed") from None
                if not self._transient(exc):
                    raise self._failed(exc) from None
                if attempt + 1 == self._attempts:
                    raise self._unreachable(exc) from None
                # The other idle connections were probably cut too (a server restart): drop them
                # now rather than meet them one attempt at a time.
                with contextlib.suppress(psycopg.Error):
                    pool.check()
            except psycopg_pool.PoolClosed:
                raise StoreError(f"PostgresStore at {self.url} is closed") from None
            time.sleep(0.05 * 4**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acall(self, work: Callable[[Any], Awaitable[_T]]) -> _T:
        """``_call`` for coroutines: runs on the pool's own loop, awaited from the caller's."""
        host, pool = self._async_side()
        return await host.run(self._acall_on_pool(pool, work))

    async def _acall_on_pool(self, pool: Any, work: Callable[[Any], Awaitable[_T]]) -> _T:
        for attempt in range(self._attempts):
            self._check_open()
            try:
                async with pool.connection() as conn:
                    return await work(conn)
            except psycopg.Error as exc:
                if self._closed:
                    raise StoreError(f"PostgresStore at {self.url} is closed") from None
                if not self._transient(exc):
                    raise self._failed(exc) from None
                if attempt + 1 == self._attempts:
                    raise self._unreachable(exc) from None
                with contextlib.suppress(psycopg.Error):
                    await pool.check()
            except psycopg_pool.PoolClosed:
                raise StoreError(f"PostgresStore at {self.url} is closed") from None
            await asyncio.sleep(0.05 * 4**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- Store interface -----------------------------------------------------------------------

    def _add_params(
        self, task: str, increments: Mapping[str, float], event_id: str | None
    ) -> dict[str, Any]:
        pairs = clean_increments(increments)
        return {
            "task": task,
            "event": event_id if event_id is not None else _PRIVATE_ID + uuid.uuid4().hex,
            "keys": [key for key, _ in pairs],
            "values": [value for _, value in pairs],
        }

    def _compact_params(self, task: str) -> dict[str, Any] | None:
        """Parameters for a pruning step if this write is one that prunes, else None."""
        with self._lock:
            self._writes += 1
            due = self._writes % self._retention.compact_every == 0
        if not due:
            return None
        return {
            "task": task,
            "batch": self._retention.compact_batch,
            "ttl": float(self._retention.ttl_seconds),
            "keep": self._retention.max_per_task,
        }

    def add(
        self, task: str, increments: Mapping[str, float], *, event_id: str | None = None
    ) -> bool:
        params = self._add_params(task, increments, event_id)
        applied = bool(self._call(lambda conn: conn.execute(_ADD, params).fetchone()[0]))
        compact = self._compact_params(task)
        if compact is not None:
            try:
                self._call(lambda conn: conn.execute(_COMPACT, compact))
            except StoreError as exc:  # the add is committed; pruning is retried next time
                _log.warning("pruning old event ids failed: %s", exc)
        return applied

    async def aadd(
        self, task: str, increments: Mapping[str, float], *, event_id: str | None = None
    ) -> bool:
        params = self._add_params(task, increments, event_id)

        async def work(conn: Any) -> bool:
            cursor = await conn.execute(_ADD, params)
            row = await cursor.fetchone()
            return bool(row[0])

        applied = await self._acall(work)
        compact = self._compact_params(task)
        if compact is not None:
            try:
                await self._acall(lambda conn: conn.execute(_COMPACT, compact))
            except StoreError as exc:
                _log.warning("pruning old event ids failed: %s", exc)
        return applied

    def read(self, task: str) -> dict[str, float]:
        rows = self._call(lambda conn: conn.execute(_READ, (task,)).fetchall())
        return {key: float(value) for key, value in rows}

    async def aread(self, task: str) -> dict[str, float]:
        async def work(conn: Any) -> list[Any]:
            cursor = await conn.execute(_READ, (task,))
            return await cursor.fetchall()

        return {key: float(value) for key, value in await self._acall(work)}

    def tasks(self) -> list[str]:
        return [row[0] for row in self._call(lambda conn: conn.execute(_TASKS).fetchall())]

    def set_meta(self, task: str, key: str, value: str) -> None:
        self._call(lambda conn: conn.execute(_SET_META, (task, key, str(value))))

    def get_meta(self, task: str, key: str) -> str | None:
        row = self._call(lambda conn: conn.execute(_GET_META, (task, key)).fetchone())
        return None if row is None else row[0]

    def cache_get(self, task: str, scope: str, key: str, *, now: float) -> str | None:
        params = (task, scope, key, float(now))
        row = self._call(lambda conn: conn.execute(_CACHE_GET, params).fetchone())
        return None if row is None else row[0]

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
        params = {"task": task, "scope": scope, "key": key, "value": str(value)}
        params.update(now=float(now), expires_at=float(expires_at))

        def work(conn: Any) -> None:
            # Re-sent after a lost reply, the upsert finds its own entry and counts nothing.
            with conn.transaction():
                n = conn.execute(_CACHE_LOCK, params).fetchone()[0]
                n -= conn.execute(_CACHE_EXPIRE, params).fetchone()[0]
                n += 1 if conn.execute(_CACHE_UPSERT, params).fetchone()[0] else 0
                if n > max_entries:
                    evict = {"task": task, "extra": n - max_entries}
                    n -= conn.execute(_CACHE_EVICT, evict).fetchone()[0]
                conn.execute(_CACHE_SET_COUNT, {"task": task, "n": n})

        self._call(work)

    def cache_size(self, task: str) -> int:
        sql = "SELECT count(*) FROM smart_answers WHERE task = %s"
        return int(self._call(lambda conn: conn.execute(sql, (task,)).fetchone()[0]))

    def cache_clear(self, task: str) -> None:
        def work(conn: Any) -> None:
            with conn.transaction():
                conn.execute("DELETE FROM smart_answers WHERE task = %s", (task,))
                conn.execute("DELETE FROM smart_answer_counts WHERE task = %s", (task,))

        self._call(work)

    def close(self) -> None:
        """Close the connection pools; further use raises StoreError. Idempotent."""
        with self._lock:
            already, self._closed = self._closed, True
            host, pool = self._async_host, self._async_pool
            self._async_host = self._async_pool = None
        if already or os.getpid() != self._pid:
            return
        with contextlib.suppress(Exception):
            self._pool.close(timeout=self._timeout)
        if host is not None and self._async_pid == os.getpid():
            with contextlib.suppress(Exception):
                host.submit(pool.close(timeout=self._timeout)).result(self._timeout + 1)
            host.stop()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"
