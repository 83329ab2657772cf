"""State stores: where every worker's shared, exact counters live (memory or SQLite for now)."""

from __future__ import annotations

from ._base import Store
from ._memory import MemoryStore
from ._sqlite import SqliteStore
from ._url import open_store

__all__ = ["MemoryStore", "SqliteStore", "Store", "open_store"]
