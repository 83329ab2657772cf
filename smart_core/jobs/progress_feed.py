"""What a long job hands its progress callback: items done and a ledger, not at every item.

A ledger is rebuilt from the store's counters and the policy's view (its bounds, its mix) each
time; per item that was several percent of a fast run's CPU (``smart demo``), for a display that
changes a few times a second at most. The feed counts items as they finish and builds a ledger
at most every ``every`` seconds, at the first call and once every item is done (or on
:meth:`ProgressFeed.flush`), so the callback still sees every item counted and the last state.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine.ledger import Ledger

__all__ = ["Progress", "ProgressFeed"]

#: ``progress(items done since the last call, ledger now, items in all)``.
Progress = Callable[[int, "Ledger", int], object]


class ProgressFeed:
    """Calls ``progress`` with the items done since its last call and ``await ledger()``."""

    def __init__(
        self,
        progress: Progress | None,
        total: int,
        ledger: Callable[[], Awaitable[Ledger]],
        *,
        every: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._progress = progress
        self._total = total
        self._ledger = ledger
        self._every = every
        self._clock = clock
        self._done = 0
        self._pending = 0
        self._last: float | None = None

    async def advance(self, n: int = 1) -> None:
        """``n`` more items are done (the first call is always shown: the run's start)."""
        if self._progress is None:
            return
        self._done += n
        self._pending += n
        now = self._clock()
        due = self._last is None or now - self._last >= self._every
        if due or self._done >= self._total:
            await self.flush()

    async def flush(self) -> None:
        """Hand the callback what is pending now (the run ended, or stopped early)."""
        if self._progress is None or (self._last is not None and not self._pending):
            return
        self._last = self._clock()
        n, self._pending = self._pending, 0
        self._progress(n, await self._ledger(), self._total)
