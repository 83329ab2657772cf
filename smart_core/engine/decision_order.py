"""One order for a process's decisions, so that its bounds may read the probes settled in it.

A probe counts in the bounds from its decision, as differing until its answers are compared
(docs/guarantee.md, step 1). With many requests in flight that is costly: 64 requests in flight
made 2.5x the probes of one at a time. ``smart run`` already decides one item at a time and
also reads the bounds at the longest prefix of decided probes that are all settled
(:class:`~smart_core.policy.settled_prefix.SettledPrefix`); this brings the same to every
request a :class:`~smart_core.engine.router.SmartRouter` serves.

The prefix is a prefix of the store's decision order only if nothing else writes between a
read and the decision reserved from it, and only while this process is the task's one decider
(the prefix stops being offered once another decider's probe shows up). So a read, the decision
and its reservation, and a probe's outcome with its settlement, happen under one lock per
router. That lock is a thread lock held across store calls, which is only sound when the store's
async calls never give up the event loop (:attr:`Store.async_inline
<smart_core.stores.Store.async_inline>`: memory and SQLite); on Redis and PostgreSQL, shared by
several processes by design, decisions go unordered as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from ..policy.settled_prefix import SettledPrefix
from ..policy.state import TaskState

__all__ = ["STALE_AFTER", "DecisionOrder"]

#: Seconds after which a probe never settled (a cancelled request, a failed reference) stops
#: holding the prefix back; it is then read as it stands in the store: open, so differing.
STALE_AFTER = 120.0


class DecisionOrder:
    """Per task, the probes this process decided, in order; ``lock`` orders decisions and
    settlements (see the module's docstring)."""

    def __init__(self, clock: Callable[[], float], *, stale_after: float = STALE_AFTER) -> None:
        self.lock = threading.Lock()
        self._clock = clock
        self._stale_after = stale_after
        self._prefixes: dict[str, SettledPrefix] = {}
        #: (task, request id) -> the probe's place in its task's order, until it settles.
        self._open: dict[tuple[str, str], int] = {}

    def state(self, task: str, counters: Mapping[str, float]) -> TaskState:
        """``task``'s state from ``counters``, with this process's settled prefix (the lock
        held)."""
        return self._prefix(task).state(counters)

    def decided(self, task: str, request_id: str | None, increments: Mapping[str, float]) -> None:
        """A decision just reserved with ``increments`` (the lock held since the state it was
        drawn from was read)."""
        seq = self._prefix(task).decided(increments)
        if seq is not None and request_id is not None:
            self._open[(task, request_id)] = seq
            if len(self._open) > 4 * 1024:
                self._forget_settled()

    def settled(self, task: str, request_id: str, written: Mapping[str, float] | None) -> None:
        """A probe's outcomes were written (``written``), or could not be (``None``: the probe
        stays open in the store, and is read as differing once in the prefix)."""
        seq = self._open.pop((task, request_id), None)
        if seq is None:
            return
        prefix = self._prefixes[task]
        if written is None:
            prefix.abandoned(seq)
        else:
            prefix.settled(seq, written)

    def _prefix(self, task: str) -> SettledPrefix:
        prefix = self._prefixes.get(task)
        if prefix is None:
            prefix = SettledPrefix(stale_after=self._stale_after, clock=self._clock)
            self._prefixes[task] = prefix
        return prefix

    def _forget_settled(self) -> None:
        """Drop the places of probes the prefix no longer holds (taken in when stale)."""
        self._open = {
            key: seq for key, seq in self._open.items() if self._prefixes[key[0]].holds(seq)
        }
