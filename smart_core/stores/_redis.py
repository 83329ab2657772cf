"""Redis store: exact shared counters for a fleet of workers on any number of machines.

Layout, under a key prefix (``smart:`` by default): a hash ``<prefix>c:<task>`` of counters, a
hash ``<prefix>m:<task>`` of metadata, a sorted set ``<prefix>e:<task>`` of event ids scored by
the time they were written, and a set ``<prefix>tasks`` of task names. The answer cache keeps a
hash ``<prefix>a:<task>`` of entries and a sorted set ``<prefix>ax:<task>`` of their expiry
times, both written by one script.

Atomicity. Every ``add`` is one Lua script (EVALSHA): it checks that no counter would become
non-finite, adds the event id with ``ZADD NX`` (stopping if it was already there), then applies
every ``HINCRBYFLOAT``. Redis runs a script to completion before serving anyone else, and the
check up front means no command in it can fail half way, so an event is applied entirely or not
at all, and a worker killed mid-call leaves nothing partial behind.

Retries. An ``add`` without an event id gets a private one, so every ``add`` is idempotent and
is re-sent safely after a dropped connection (the reply may have been lost after the script ran).
Calls are tried ``attempts`` times; if the server stays unreachable they raise ``StoreError``
and the next call reconnects by itself.

Retention. Event ids are remembered for ``EventRetention.ttl_seconds`` (7 days by default) and at
most ``max_per_task`` (1,000,000) per task; each ``add`` drops the expired ones of its task in the
same script, and an idle task's id set expires as a whole after the window.

Durability is Redis's own: with the default snapshotting a server crash loses recent writes (all
of each event or none); run Redis with ``appendonly yes`` and ``appendfsync always`` if counters
must survive a crash of the server itself. Redis Cluster is not supported (``tasks`` reads a set
that lives in one slot); use one primary (with replicas for failover).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ..errors import StoreError
from ..task.redaction import redact_url
from ._base import Store, ThreadedCacheCalls
from ._increments import clean_increments
from ._retention import DEFAULT_RETENTION, EventRetention

try:
    import redis
    import redis.asyncio
    import redis.asyncio.retry
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - redis is a dependency; this guards partial installs
    redis = None  # type: ignore[assignment]

__all__ = ["RedisStore"]

_T = TypeVar("_T")

# KEYS: counters hash, events zset, tasks set.
# ARGV: task, event id, now, ttl seconds, max ids per task, then key/value pairs.
_ADD_SCRIPT = """
local counters, events, tasks = KEYS[1], KEYS[2], KEYS[3]
local task, event_id = ARGV[1], ARGV[2]
local now, ttl, keep = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local npairs = (#ARGV - 5) / 2
if npairs > 0 then
  local fields = {}
  for i = 1, npairs do fields[i] = ARGV[4 + 2 * i] end
  local current = redis.call('HMGET', counters, unpack(fields))
  for i = 1, npairs do
    local total = tonumber(current[i] or '0') + tonumber(ARGV[5 + 2 * i])
    if total ~= total or total == math.huge or total == -math.huge then
      return redis.error_reply('SMART counter ' .. fields[i] .. ' would become non-finite')
    end
  end
end
redis.call('ZREMRANGEBYSCORE', events, '-inf', '(' .. tostring(now - ttl))
if redis.call('ZADD', events, 'NX', now, event_id) == 0 then
  return 0
end
redis.call('ZREMRANGEBYRANK', events, 0, -(keep + 1))
redis.call('EXPIRE', events, math.ceil(ttl))
for i = 1, npairs do
  redis.call('HINCRBYFLOAT', counters, ARGV[4 + 2 * i], ARGV[5 + 2 * i])
end
if npairs > 0 then
  redis.call('SADD', tasks, task)
end
return 1
"""

# The answer cache. KEYS: entries hash (field -> "expires_at\nvalue"), expiry zset (field ->
# expires_at). ARGV: field, value, now, expires_at, max entries. Expired entries go first, then
# the soonest to expire beyond the limit; one script, so an entry is written whole or not at all.
_CACHE_PUT_SCRIPT = """
local entries, expiry = KEYS[1], KEYS[2]
local field, value = ARGV[1], ARGV[2]
local now, expires_at, keep = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local old = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
for i = 1, #old do redis.call('HDEL', entries, old[i]) end
redis.call('ZREMRANGEBYSCORE', expiry, '-inf', now)
redis.call('HSET', entries, field, ARGV[4] .. '\\n' .. value)
redis.call('ZADD', expiry, expires_at, field)
local extra = redis.call('ZCARD', expiry) - keep
if extra > 0 then
  local gone = redis.call('ZPOPMIN', expiry, extra)
  for i = 1, #gone, 2 do redis.call('HDEL', entries, gone[i]) end
end
return 1
"""

# Ids the store makes up for adds that came without one; no caller's id starts like this.
_PRIVATE_ID = "smart-retry:"


def _require_client() -> None:
    if redis is None:
        raise StoreError(
            "the Redis store needs the 'redis' package (redis-py >= 5); "
            "install it with: pip install 'redis>=5'"
        )


class RedisStore(ThreadedCacheCalls, Store):
    """Counters in a Redis server shared by every worker that opens the same URL.

    Open it with ``open_store("redis://[:password@]host:6379/0")`` (``rediss://`` for TLS).
    ``url`` is the URL with its password replaced by ``***``; the password itself is kept only
    inside the client. ``key_prefix`` separates several deployments in one database;
    ``retention`` sets how long event ids are remembered (see the module docstring);
    ``timeout`` bounds each connect and each command, in seconds.
    """

    async_inline = False

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "smart:",
        retention: EventRetention = DEFAULT_RETENTION,
        timeout: float = 5.0,
        attempts: int = 3,
    ) -> None:
        _require_client()
        self.url = redact_url(url)
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts!r}")
        self._prefix = key_prefix
        self._retention = retention
        self._attempts = attempts
        self._options: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
        }
        try:
            # Retries are ours (every call is idempotent; see _call), not the client's.
            self._client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **self._options)
        except (ValueError, redis.RedisError) as exc:
            raise StoreError(
                f"invalid Redis store URL {self.url}: {redact_url(str(exc))}; "
                "use redis://[:password@]host[:port][/db] or rediss://... for TLS"
            ) from None
        self._secret_url = url
        self._script = self._client.register_script(_ADD_SCRIPT)
        self._cache_script = self._client.register_script(_CACHE_PUT_SCRIPT)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._async_lock = threading.Lock()
        self._closed = False
        self._call(self._client.ping)  # fail now, with the fix, rather than at the first add

    # -- keys and arguments ------------------------------------------------------------------

    def _counters_key(self, task: str) -> str:
        return f"{self._prefix}c:{task}"

    def _meta_key(self, task: str) -> str:
        return f"{self._prefix}m:{task}"

    def _events_key(self, task: str) -> str:
        return f"{self._prefix}e:{task}"

    def _tasks_key(self) -> str:
        return f"{self._prefix}tasks"

    def _add_args(
        self, task: str, increments: Mapping[str, float], event_id: str | None
    ) -> tuple[list[str], list[Any]]:
        pairs = clean_increments(increments)
        keys = [self._counters_key(task), self._events_key(task), self._tasks_key()]
        ident = event_id if event_id is not None else _PRIVATE_ID + uuid.uuid4().hex
        args: list[Any] = [
            task,
            ident,
            repr(time.time()),
            repr(float(self._retention.ttl_seconds)),
            self._retention.max_per_task,
        ]
        for key, value in pairs:
            args += [key, repr(value)]
        return keys, args

    # -- errors and retries ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"RedisStore at {self.url} is closed; open a new store")

    def _unreachable(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"Redis store at {self.url} is unreachable after {self._attempts} attempt(s) "
            f"({type(exc).__name__}: {redact_url(str(exc))}); check that the server is running "
            "and that the URL's host, port, database and password are right. Nothing was "
            "applied twice: the call can be repeated once the server is back."
        )

    def _failed(self, exc: BaseException) -> StoreError:
        if isinstance(exc, redis.AuthenticationError):
            return StoreError(
                f"Redis store at {self.url} refused the credentials ({exc}); "
                "check the URL's user name and password"
            )
        return StoreError(f"Redis store at {self.url} failed: {redact_url(str(exc))}")

    @staticmethod
    def _transient(exc: BaseException) -> bool:
        if isinstance(exc, redis.AuthenticationError):
            return False
        return isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.BusyLoadingError)

    def _call(self, work: Callable[[], _T]) -> _T:
        """Run an idempotent ``work``, re-sending it while the connection is failing."""
        self._check_open()
        for attempt in range(self._attempts):
            try:
                return work()
            except redis.RedisError as exc:
                if self._closed:
                    raise StoreError(f"RedisStore at {self.url} is closed") from None
                if not self._transient(exc):
                    raise self._failed(exc) from None
                if attempt + 1 == self._attempts:
                    raise self._unreachable(exc) from None
            time.sleep(0.05 * 4**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acall(self, work: Callable[[Any], Awaitable[_T]]) -> _T:
        self._check_open()
        client, script = self._async_client()
        for attempt in range(self._attempts):
            try:
                return await work((client, script))
            except redis.RedisError as exc:
                if self._closed:
                    raise StoreError(f"RedisStore at {self.url} is closed") from None
                if not self._transient(exc):
                    raise self._failed(exc) from None
                if attempt + 1 == self._attempts:
                    raise self._unreachable(exc) from None
            await asyncio.sleep(0.05 * 4**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _async_client(self) -> tuple[Any, Any]:
        """One asyncio client per event loop: redis.asyncio connections belong to their loop."""
        loop = asyncio.get_running_loop()
        with self._async_lock:
            entry = self._async.get(loop)
            if entry is None:
                retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
                client = redis.asyncio.Redis.from_url(
                    self._secret_url, retry=retry, **self._options
                )
                entry = (client, client.register_script(_ADD_SCRIPT))
                self._async[loop] = entry
        return entry

    # -- Store interface -----------------------------------------------------------------------

    def add(
        self, task: str, increments: Mapping[str, float], *, event_id: str | None = None
    ) -> bool:
        keys, args = self._add_args(task, increments, event_id)
        return bool(self._call(lambda: self._script(keys=keys, args=args)))

    async def aadd(
        self, task: str, increments: Mapping[str, float], *, event_id: str | None = None
    ) -> bool:
        keys, args = self._add_args(task, increments, event_id)
        return bool(await self._acall(lambda c: c[1](keys=keys, args=args)))

    def read(self, task: str) -> dict[str, float]:
        raw = self._call(lambda: self._client.hgetall(self._counters_key(task)))
        return {key: float(value) for key, value in raw.items()}

    async def aread(self, task: str) -> dict[str, float]:
        raw = await self._acall(lambda c: c[0].hgetall(self._counters_key(task)))
        return {key: float(value) for key, value in raw.items()}

    def tasks(self) -> list[str]:
        return sorted(self._call(lambda: self._client.smembers(self._tasks_key())))

    def set_meta(self, task: str, key: str, value: str) -> None:
        def work() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(self._meta_key(task), key, str(value))
            pipe.sadd(self._tasks_key(), task)
            pipe.execute()

        self._call(work)

    def get_meta(self, task: str, key: str) -> str | None:
        return self._call(lambda: self._client.hget(self._meta_key(task), key))

    def _cache_keys(self, task: str) -> list[str]:
        return [f"{self._prefix}a:{task}", f"{self._prefix}ax:{task}"]

    def cache_get(self, task: str, scope: str, key: str, *, now: float) -> str | None:
        entries = self._cache_keys(task)[0]
        raw = self._call(lambda: self._client.hget(entries, _cache_field(scope, key)))
        if raw is None:
            return None
        expires_at, _, value = raw.partition("\n")
        return None if float(expires_at) <= now else value

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
        args = [_cache_field(scope, key), str(value), repr(float(now))]
        args += [repr(float(expires_at)), int(max_entries)]
        keys = self._cache_keys(task)
        self._call(lambda: self._cache_script(keys=keys, args=args))

    def cache_size(self, task: str) -> int:
        return int(self._call(lambda: self._client.hlen(self._cache_keys(task)[0])))

    def cache_clear(self, task: str) -> None:
        self._call(lambda: self._client.delete(*self._cache_keys(task)))

    def close(self) -> None:
        """Close the connection pools; further use raises StoreError. Idempotent."""
        self._closed = True
        with contextlib.suppress(redis.RedisError, OSError):
            self._client.close()

    async def aclose(self) -> None:
        self._closed = True
        with self._async_lock:
            entries = list(self._async.items())
            self._async.clear()
        running = asyncio.get_running_loop()
        for loop, (client, _script) in entries:
            if loop is running:
                with contextlib.suppress(redis.RedisError, OSError):
                    await client.aclose()
        self.close()

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r})"


def _cache_field(scope: str, key: str) -> str:
    """One hash field per entry; the key holds no NUL, so no two (scope, key) pairs collide."""
    if "\x00" in key:
        raise ValueError("answer cache keys must not contain NUL characters")
    return f"{scope}\x00{key}"
