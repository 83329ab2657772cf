"""Cooldown: stop routing to a candidate that keeps failing, for a while.

A routed candidate that fails falls back to the reference, so its failures cost the user
latency (a failed call, then the reference's) but never quality, and they are not disagreements.
A candidate that is down would add that latency to every request it is routed, so after
``after`` failures in a row its routed requests go straight to the reference for ``seconds``
(as LiteLLM's router cools a failing deployment down). The state is per process: each worker
learns for itself that a provider is down, with no store write on the request path.

Skipping a candidate only moves requests to the reference, whose answers agree by definition,
so a cooldown can never weaken the guarantee; it is not a probe either (no candidate is called).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

__all__ = ["Cooldown"]


class Cooldown:
    """Failures in a row per key (task, route), and until when each key is cooling down."""

    def __init__(self, after: int, seconds: float, clock: Callable[[], float]) -> None:
        self.after = after
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._streak: dict[Hashable, int] = {}
        self._until: dict[Hashable, float] = {}

    def failed(self, key: Hashable) -> bool:
        """Count one more failure in a row; True when it starts a cooldown."""
        if self.after <= 0:
            return False
        with self._lock:
            streak = self._streak.get(key, 0) + 1
            if streak < self.after:
                self._streak[key] = streak
                return False
            self._streak[key] = 0
            self._until[key] = self._clock() + self.seconds
            return True

    def succeeded(self, key: Hashable) -> None:
        """A call answered: the streak starts over."""
        with self._lock:
            self._streak.pop(key, None)

    def cooling(self, key: Hashable) -> bool:
        """Is ``key`` cooling down now? (After a cooldown the route is tried again.)"""
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return False
            if self._clock() < until:
                return True
            del self._until[key]
            return False
