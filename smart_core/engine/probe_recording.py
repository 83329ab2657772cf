"""Running and recording probes (a mixin of :class:`~smart_core.SmartRouter`).

A probe calls the models its routes need beside the reference (and, while a task's learned
scorers train, their steps' models: :mod:`.scorer_training`), compares every route's would-be
answer with the reference's, and records the outcomes once, under the request's id. Probes run
in worker threads for sync callers and as tasks for async ones; the router waits for them on
``flush``/``aflush`` and on close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from ..task.answer import Answer
from .increments import probed
from .probe_run import AsyncProbeRun, ProbeRun

if TYPE_CHECKING:
    from .learned_training import TrainingProbe
    from .ticket import Ticket

__all__ = ["ProbeRecording"]

_Answers = Mapping[str, Answer | BaseException]


class ProbeRecording:
    """The probe methods of :class:`~smart_core.SmartRouter` (a mixin: they need its routes,
    store, decision order, scorer training, thread pool and warnings)."""

    def start_probes(self, ticket: Ticket, call: Callable[[str], Answer]) -> ProbeRun:
        """Call ``call(model)`` for each of the ticket's probe candidates in worker threads."""
        run = ProbeRun(self, ticket, self._executor(), call, self._probe_calls(ticket))
        if ticket.probe_models:
            with self._threaded_lock:
                self._threaded.add(run)
        return run

    def astart_probes(
        self, ticket: Ticket, call: Callable[[str], Awaitable[Answer]]
    ) -> AsyncProbeRun:
        """Start ``await call(model)`` for each of the ticket's probe candidates as tasks."""
        return AsyncProbeRun(self, ticket, call, self._probe_calls(ticket))

    def _probe_calls(self, ticket: Ticket) -> tuple[str, ...]:
        """The models a probe calls: its routes', and those its task's learned scorers train on
        (only beside a route: a probe measuring none is never recorded, so neither would the
        training calls' cost be)."""
        models = self.routes.models_to_probe(ticket.probe_models)
        extra = self.training.probe_models(ticket) if ticket.probe_models else ()
        return (*models, *(m for m in extra if m not in models)) if extra else models

    def record_probe(
        self, ticket: Ticket, reference: Answer, answers: _Answers
    ) -> dict[str, float]:
        """Compare every candidate answer with the reference's and record the outcomes, once.

        Returns the counter increments written ({} if this probe was recorded before)."""
        written, ready = self._record_in_order(ticket, reference, answers)
        if ready:
            self._freeze(ticket.task, ready)
        return written

    async def arecord_probe(
        self, ticket: Ticket, reference: Answer, answers: _Answers
    ) -> dict[str, float]:
        if self._order is not None:  # the store's async calls run inline: the same steps
            written, ready = self._record_in_order(ticket, reference, answers)
        else:
            inc = self._probe_increments(ticket, reference, answers)
            try:
                applied = await self.store.aadd(
                    ticket.task, inc, event_id=f"{ticket.request_id}:probe"
                )
            except StoreError as exc:
                self._warn_outage(ticket.task, exc)
                return {}
            written = inc if applied else {}
            ready = self.training.observe(ticket, reference, answers) if applied else None
        if ready:  # a fit takes CPU time: off the event loop
            await asyncio.to_thread(self._freeze, ticket.task, ready)
        return written

    def _record_in_order(
        self, ticket: Ticket, reference: Answer, answers: _Answers
    ) -> tuple[dict[str, float], list[TrainingProbe] | None]:
        """Write the probe (in decision order when decisions are ordered); the increments
        written and, if it completed a training set, the task's training probes."""
        inc = self._probe_increments(ticket, reference, answers)
        if self._order is None:
            written = self._write_probe(ticket, inc)
        else:
            with self._order.lock:
                written = self._write_probe(ticket, inc)
                self._order.settled(ticket.task, ticket.request_id, written)
        ready = self.training.observe(ticket, reference, answers) if written else None
        return written or {}, ready

    def _write_probe(self, ticket: Ticket, inc: dict[str, float]) -> dict[str, float] | None:
        """The increments written; ``None`` if the store could not be reached."""
        try:
            applied = self.store.add(ticket.task, inc, event_id=f"{ticket.request_id}:probe")
        except StoreError as exc:  # the probe stays open: counted as differing, never lost
            self._warn_outage(ticket.task, exc)
            return None
        return inc if applied else {}

    def _freeze(self, task: str, probes: Any) -> None:
        """Fit and freeze ``task``'s learned scorers; its next decision opens their routes."""
        if self.training.freeze(task, probes):
            self._policies.pop(task, None)

    def _probe_increments(
        self, ticket: Ticket, reference: Answer, answers: _Answers
    ) -> dict[str, float]:
        def warn(what: str, message: str) -> None:
            self._warn_once(ticket.task, what, message)

        return probed(
            ticket, reference, answers, self.routes, self.config.comparator, self.cost_of, warn
        )

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="smart-probe")
        return self._pool

    def _threaded_done(self, run: ProbeRun) -> None:
        with self._threaded_lock:
            self._threaded.discard(run)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every probe started with :meth:`start_probes` has been recorded."""
        with self._threaded_lock:
            runs = list(self._threaded)
        for run in runs:
            run.wait(timeout)

    async def aflush(self) -> None:
        """Wait until every background probe (async or threaded) has been recorded."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        if self._threaded:
            await asyncio.to_thread(self.flush)
