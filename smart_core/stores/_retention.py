"""How long a durable store remembers event ids: the window in which a retry is deduplicated.

Event ids exist only so that a retried or replayed write is not counted twice. A request's
retries come within seconds, and a batch run resumed after a crash re-sends its ids when it is
restarted, usually within hours. Keeping every id forever would grow the store by one row per
write for ever, so durable stores forget an id once it is older than ``ttl_seconds`` or once more
than ``max_per_task`` newer ids of the same task exist, whichever comes first. The counters
themselves are never touched: forgetting an id only means a write re-sent after that point is
counted again.

Forgetting is done a little at a time by the writers themselves (no background job), in its own
step after a write or inside the write's transaction, so it never leaves half an event behind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_RETENTION", "EventRetention"]


@dataclass(frozen=True)
class EventRetention:
    """The retention window for event ids; both limits apply (the tighter one wins)."""

    ttl_seconds: float = 7 * 24 * 3600.0
    """An id is remembered at least this long unless ``max_per_task`` newer ids push it out."""
    max_per_task: int = 1_000_000
    """About this many of a task's newest ids are kept; SQLite and Redis keep at most this many
    (plus up to ``compact_every`` between pruning steps), PostgreSQL up to about 1.3 times as many
    when several writers add to one task at the same moment (they may share a sequence number)."""
    compact_every: int = 64
    """SQLite and PostgreSQL writers prune old ids once every this many of their writes (Redis
    prunes in every write's script)."""
    compact_batch: int = 1_000
    """At most this many of a task's oldest ids are examined per pruning step, so one step stays
    short; ``compact_batch / compact_every`` is how much faster than writes pruning can go."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ttl_seconds) and self.ttl_seconds > 0):
            raise ValueError(f"ttl_seconds must be a positive number, got {self.ttl_seconds!r}")
        for name in ("max_per_task", "compact_every", "compact_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


DEFAULT_RETENTION = EventRetention()
