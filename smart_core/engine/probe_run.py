"""The candidate calls of one probe, running beside the call that answers the user.

A probe is recorded once every candidate is done. A call cancelled before it answered (the event
loop ended, the router was closed without waiting) is recorded as :data:`CUT_SHORT`, which the
router counts as a differing answer: routed, that call would have run and served its answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..task.answer import Answer

if TYPE_CHECKING:
    from .router import SmartRouter
    from .ticket import Ticket

__all__ = ["CUT_SHORT", "AsyncProbeRun", "ProbeRun"]


class AsyncProbeRun:
    """The candidate calls of one probe, running as tasks beside the reference call."""

    def __init__(
        self,
        router: SmartRouter,
        ticket: Ticket,
        call: Callable[[str], Awaitable[Answer]],
        models: Sequence[str],
    ) -> None:
        self._router = router
        self._ticket = ticket
        self._tasks = {m: asyncio.ensure_future(call(m)) for m in models}
        # A probe may measure routes that call no model beside the reference (the semantic
        # cache's): it is recorded all the same, once the reference has answered.
        self._open = bool(ticket.probe_models)

    def cancel(self) -> None:
        """Abandon the probe (the reference failed or the request was re-routed)."""
        for t in self._tasks.values():
            t.cancel()
        self._tasks = {}
        self._open = False

    async def asettle(self, reference: Answer) -> None:
        """Record the probe once every candidate is done: now, or in the background."""
        if not self._open:
            return
        self._open = False
        if self._router.wait_for_probes:
            await self._record(reference)
            return
        router = self._router
        while len(router._background) >= router.max_background_probes:
            await asyncio.wait(router._background, return_when=asyncio.FIRST_COMPLETED)
        bg = asyncio.ensure_future(self._record(reference))
        router._background.add(bg)
        bg.add_done_callback(router._background.discard)

    async def _record(self, reference: Answer) -> None:
        try:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        except asyncio.CancelledError:
            # The loop is shutting down (asyncio.run() ending) or the caller gave up: record the
            # probe now -- candidates that answered are compared, the ones cut short count as
            # differing -- before letting the cancellation through.
            self._router.record_probe(self._ticket, reference, self._answers())
            raise
        await self._router.arecord_probe(self._ticket, reference, self._answers())

    def _answers(self) -> dict[str, Answer | BaseException]:
        return {c: _outcome_of(t) for c, t in self._tasks.items()}


class ProbeRun:
    """The candidate calls of one probe, running in worker threads beside the caller's call.

    Whichever finishes last -- the candidates or :meth:`settle` with the reference's answer --
    records the probe, so a synchronous caller never waits for the candidates.
    """

    def __init__(
        self,
        router: SmartRouter,
        ticket: Ticket,
        pool: ThreadPoolExecutor,
        call: Callable[[str], Answer],
        models: Sequence[str],
    ) -> None:
        self._router = router
        self._ticket = ticket
        self._lock = threading.Lock()
        self._reference: Answer | None = None
        self._cancelled = False
        self._finished = False
        self._done = threading.Event()
        self._futures: dict[str, Future[Answer]] = {m: pool.submit(call, m) for m in models}
        self._pending = len(self._futures)
        if not ticket.probe_models:  # nothing to measure (routes calling no other model are)
            self._finished = True
            self._done.set()
        for f in self._futures.values():
            f.add_done_callback(self._one_done)

    def cancel(self) -> None:
        """Abandon the probe: nothing is recorded (calls already running finish unobserved)."""
        with self._lock:
            self._cancelled = True
        for f in self._futures.values():
            f.cancel()
        self._finish_if_ready()

    def settle(self, reference: Answer) -> None:
        """Hand over the reference's answer; waits for the candidates if the router says so."""
        with self._lock:
            self._reference = reference
        self._finish_if_ready()
        if self._router.wait_for_probes:
            self.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the probe is recorded (or abandoned); False on timeout."""
        return self._done.wait(timeout)

    def _one_done(self, _: Future[Answer]) -> None:
        with self._lock:
            self._pending -= 1
        self._finish_if_ready()

    def _finish_if_ready(self) -> None:
        with self._lock:
            if self._finished:
                return
            if self._cancelled:
                record = False
            elif self._pending == 0 and self._reference is not None:
                record = True
            else:
                return
            self._finished = True
            reference = self._reference
        try:
            if record and reference is not None:
                answers = {c: _outcome_of(f) for c, f in self._futures.items()}
                self._router.record_probe(self._ticket, reference, answers)
        finally:
            self._done.set()
            self._router._threaded_done(self)


class _CutShort(Exception):
    """Stands for a probe call cancelled before it answered (see :data:`CUT_SHORT`)."""


#: What a probe call that was cancelled before answering is recorded as: a differing answer.
CUT_SHORT = _CutShort("probe call cancelled before it answered")


def _outcome_of(call: asyncio.Future[Answer] | Future[Answer]) -> Answer | BaseException:
    """A finished call's answer or exception; :data:`CUT_SHORT` if it was cancelled or is still
    running (the probe is being recorded because its loop or pool is going away)."""
    if not call.done() or call.cancelled():
        return CUT_SHORT
    exc = call.exception()
    return exc if exc is not None else call.result()
