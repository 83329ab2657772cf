"""The state-store interface every backend implements: exact counters per task, written atomically.

Everything the engine learns (probe outcomes, routed requests, spend) is a sum, so a store only
needs atomic, idempotent increments and a consistent read. That maps directly onto SQLite
transactions, Redis hashes + Lua, and PostgreSQL upserts, and lets every worker recompute the
policy from the same shared numbers.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from ..errors import StoreError

__all__ = ["Store", "ThreadedCacheCalls"]


class Store(ABC):
    """Per-task counters and metadata.

    ``add`` applies all ``increments`` in one atomic step. When ``event_id`` is given, the step is
    idempotent: a second ``add`` with the same ``(task, event_id)`` changes nothing and returns
    ``False``. This is what keeps a retried or replayed probe from being counted twice, and a
    crash mid-write from leaving half an event behind.
    """

    url: str
    #: Whether the async twins (``aadd``, ``aread``) run the sync calls inline, never giving up
    #: the event loop: then one lock held across a read, a decision and its write orders every
    #: decision of a process, async or not (:mod:`smart_core.engine.decision_order`). Network
    #: backends with real async clients say ``False``.
    async_inline: ClassVar[bool] = True

    @abstractmethod
    def add(
        self, task: str, increments: Mapping[str, float], *, event_id: str | None = None
    ) -> bool:
        """Atomically add ``increments`` to ``task``'s counters; False if ``event_id`` was seen."""

    @abstractmethod
    def read(self, task: str) -> dict[str, float]:
        """A consistent snapshot of all of ``task``'s counters (missing counters are absent)."""

    @abstractmethod
    def tasks(self) -> list[str]:
        """Names of all tasks that have counters or metadata, sorted."""

    @abstractmethod
    def set_meta(self, task: str, key: str, value: str) -> None:
        """Store a string under ``(task, key)``, replacing any previous value."""

    @abstractmethod
    def get_meta(self, task: str, key: str) -> str | None:
        """The string stored under ``(task, key)``, or None."""

    # -- the answer cache (smart_core.cache): whole entries, not counters ---------------------
    # An entry is an opaque string under (task, scope, key). ``scope`` is the namespace a request
    # may read (its tenant, and its user when answers are per user): it is part of the key, so
    # no lookup can reach an entry written under another scope. Times are unix seconds passed by
    # the caller (one clock for every backend, and tests need no sleeping).

    def cache_get(self, task: str, scope: str, key: str, *, now: float) -> str | None:
        """The entry under ``(task, scope, key)`` unless missing or expired at ``now``."""
        raise StoreError(f"{type(self).__name__} keeps no answer cache; use a built-in store")

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
        """Write one entry atomically (replacing the one under the same key), drop ``task``'s
        entries expired at ``now``, then the soonest to expire beyond ``max_entries``."""
        raise StoreError(f"{type(self).__name__} keeps no answer cache; use a built-in store")

    def cache_size(self, task: str) -> int:
        """How many entries ``task`` holds (expired ones included until a write drops them)."""
        raise StoreError(f"{type(self).__name__} keeps no answer cache; use a built-in store")

    def cache_clear(self, task: str) -> None:
        """Drop every entry of ``task`` (its counters and metadata stay)."""
        raise StoreError(f"{type(self).__name__} keeps no answer cache; use a built-in store")

    async def acache_get(self, task: str, scope: str, key: str, *, now: float) -> str | None:
        return self.cache_get(task, scope, key, now=now)

    async def acache_put(
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
        self.cache_put(
            task, scope, key, value, now=now, expires_at=expires_at, max_entries=max_entries
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the store must not be used afterwards."""

    # Async twins. Local backends are sub-millisecond, so the default runs them inline;
    # network backends (Redis, PostgreSQL) override these with real async clients.
    async def aadd(
        self, task: str, increments: Mapping[str, float], *, event_id: str | None = None
    ) -> bool:
        return self.add(task, increments, event_id=event_id)

    async def aread(self, task: str) -> dict[str, float]:
        return self.read(task)

    async def aclose(self) -> None:
        await asyncio.sleep(0)
        self.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ThreadedCacheCalls:
    """The answer cache's async calls for a store on a network server (a mixin before
    :class:`Store`): the sync client runs in a worker thread, one call per request, so the
    event loop never waits on the network."""

    async def acache_get(self, task: str, scope: str, key: str, *, now: float) -> str | None:
        return await asyncio.to_thread(self.cache_get, task, scope, key, now=now)  # type: ignore[attr-defined]

    async def acache_put(
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
        await asyncio.to_thread(
            self.cache_put,  # type: ignore[attr-defined]
            task,
            scope,
            key,
            value,
            now=now,
            expires_at=expires_at,
            max_entries=max_entries,
        )
