"""State stores: where every worker's shared, exact counters live.

``memory://`` for one process, ``sqlite:///path.db`` for processes on one machine, ``redis://``
and ``postgresql://`` for a fleet. ``RedisStore`` and ``PostgresStore`` are imported on first use,
so that their client libraries load only in processes that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Store
from ._memory import MemoryStore
from ._retention import DEFAULT_RETENTION, EventRetention
from ._run_state import RunState, open_run_state
from ._run_state_sqlite import SqliteRunState, sqlite_timeline
from ._sqlite import SqliteStore
from ._url import open_store

if TYPE_CHECKING:
    from ._postgres import PostgresStore
    from ._redis import RedisStore

__all__ = [
    "DEFAULT_RETENTION",
    "EventRetention",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "RunState",
    "SqliteRunState",
    "SqliteStore",
    "Store",
    "open_run_state",
    "open_store",
    "sqlite_timeline",
]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        from ._redis import RedisStore

        return RedisStore
    if name == "PostgresStore":
        from ._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
