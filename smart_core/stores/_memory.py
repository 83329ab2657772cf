"""In-process store: plain dicts behind one lock, for tests and single-process deployments."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping

from ..errors import StoreError
from ._base import Store

__all__ = ["MemoryStore"]


def _clean_increments(increments: Mapping[str, float]) -> dict[str, float]:
    """Coerce increments to floats up front so a bad value fails before anything is written."""
    cleaned: dict[str, float] = {}
    for key, value in increments.items():
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"increment {key!r} must be a finite number, got {value!r}")
        cleaned[str(key)] = number
    return cleaned


class MemoryStore(Store):
    """Counters held in this process only; lost when it exits.

    Every operation takes a single lock, so concurrent threads see the same atomic, idempotent
    behaviour as the durable backends (which is what makes it a faithful test double).

    Idempotency covers the last ``max_events`` writes that carry an event id (a request's
    retries come within moments of each other): remembering every id forever would grow a
    long-running process by a few hundred bytes per request.
    """

    url = "memory://"

    def __init__(self, *, max_events: int = 100_000) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events!r}")
        self._lock = threading.Lock()
        self._counters: dict[str, dict[str, float]] = {}
        self._events: set[tuple[str, str]] = set()
        self._event_order: deque[tuple[str, str]] = deque()
        self._max_events = max_events
        self._meta: dict[str, dict[str, str]] = {}
        # Per task, (scope, key) -> (value, expires_at), in write order: with one TTL per task the
        # first entries are also the first to expire, so dropping from the front is O(1).
        self._answers: dict[str, dict[tuple[str, str], tuple[str, float]]] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("MemoryStore is closed; open a new store with open_store('memory://')")

    def add(
        self, task: str, increments: Mapping[str, float], *, event_id: str | None = None
    ) -> bool:
        cleaned = _clean_increments(increments)
        with self._lock:
            self._check_open()
            if event_id is not None:
                marker = (task, event_id)
                if marker in self._events:
                    return False
                self._events.add(marker)
                self._event_order.append(marker)
                if len(self._event_order) > self._max_events:
                    self._events.discard(self._event_order.popleft())
            if cleaned:
                counters = self._counters.setdefault(task, {})
                for key, value in cleaned.items():
                    counters[key] = counters.get(key, 0.0) + value
            return True

    def read(self, task: str) -> dict[str, float]:
        with self._lock:
            self._check_open()
            return dict(self._counters.get(task, {}))

    def tasks(self) -> list[str]:
        with self._lock:
            self._check_open()
            return sorted(set(self._counters) | set(self._meta))

    def set_meta(self, task: str, key: str, value: str) -> None:
        with self._lock:
            self._check_open()
            self._meta.setdefault(task, {})[key] = value

    def get_meta(self, task: str, key: str) -> str | None:
        with self._lock:
            self._check_open()
            return self._meta.get(task, {}).get(key)

    def cache_get(self, task: str, scope: str, key: str, *, now: float) -> str | None:
        with self._lock:
            self._check_open()
            entry = self._answers.get(task, {}).get((scope, key))
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

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
        value = str(value)
        with self._lock:
            self._check_open()
            entries = self._answers.setdefault(task, {})
            entries.pop((scope, key), None)
            entries[(scope, key)] = (value, float(expires_at))
            while entries:
                first = next(iter(entries))
                if entries[first][1] > now and len(entries) <= max_entries:
                    break
                del entries[first]

    def cache_size(self, task: str) -> int:
        with self._lock:
            self._check_open()
            return len(self._answers.get(task, {}))

    def cache_clear(self, task: str) -> None:
        with self._lock:
            self._check_open()
            self._answers.pop(task, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def __repr__(self) -> str:
        return "MemoryStore()"
