"""Drivers of the serving flow (:mod:`.flow`): they perform its effects and feed it the results.

A :class:`Performer` performs one effect against a :class:`~smart_core.SmartRouter` and the
caller's :class:`Calls`; :func:`run_flow` drives a flow with it to the end. The async twins do
the same with ``await``. The streaming drivers relay the answering call's chunks to the caller as
they come, holding back the last one (it carries the certificate once the answer is recorded)
and any that show the user nothing yet (so a call failing before that still falls back).

Jobs with their own state (``smart run``, the paper simulation) subclass a performer and
override the steps they do differently; the flow stays the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..task.answer import Answer
from .effects import (
    Begin,
    Call,
    Delivered,
    Effect,
    FallBack,
    Finish,
    LookUp,
    RecordFailure,
    Remember,
    ServeHit,
    Settle,
    StartProbes,
)
from .ticket import Routed, Ticket

if TYPE_CHECKING:
    from ..cache import CacheLookup, RequestCache
    from .router import SmartRouter

__all__ = [
    "AsyncPerformer",
    "Calls",
    "Performer",
    "Streamed",
    "arun_flow",
    "astream_flow",
    "run_flow",
    "stream_flow",
]

Flow = Generator[Effect, Any, Any]


def _always(_: Any) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Calls:
    """How the caller reaches its models (sync callables, or async ones for the async drivers).

    ``call(model)`` answers the user: an :class:`Answer` (the framework's own result in
    ``Answer.raw``), or for the streaming drivers an iterator of the framework's chunks.
    ``probe(model)`` is a probe's call, invisible to the user (no callbacks, no tracing).
    Streaming only: ``streamed(model, chunks)`` turns the chunks into an :class:`Answer`
    (``None`` if there is nothing to record), and ``shows(chunk)`` says whether a chunk shows
    the user anything. ``cache`` is the request's view of the answer cache
    (``router.request_cache(...)``); ``None``: the request neither reads nor writes it.
    ``request`` is the request itself, provider-neutral (the adapters pass a list of
    ``{"role", "content"}`` messages): carried on the ticket for cascade scorers that read it.
    """

    call: Callable[[str], Any]
    probe: Callable[[str], Any]
    streamed: Callable[[str, list[Any]], Answer | None] | None = None
    shows: Callable[[Any], bool] = _always
    cache: RequestCache | None = None
    request: Any = None


def _with_request(ticket: Ticket, request: Any) -> Ticket:
    return ticket if request is None else replace(ticket, request=request)


@dataclass(frozen=True, slots=True)
class Streamed:
    """One chunk relayed to the caller; ``routed`` is set on the last one (whose ``chunk`` is
    ``None`` when the stream had none)."""

    chunk: Any
    ticket: Ticket
    routed: Routed | None = None


class Performer:
    """Performs the flow's effects synchronously, against ``router`` and ``calls``."""

    def __init__(self, router: SmartRouter, calls: Calls) -> None:
        self.router = router
        self.calls = calls

    def __call__(self, effect: Effect) -> Any:
        return getattr(self, _STEP[type(effect)])(effect)

    def begin(self, e: Begin) -> Ticket:
        return _with_request(self.router.begin(e.task, request_id=e.request_id), self.calls.request)

    def look_up(self, e: LookUp) -> CacheLookup | None:
        cache = self.calls.cache
        return None if cache is None else cache.lookup(e.ticket.task)

    def serve_hit(self, e: ServeHit) -> Routed:
        return self.router.serve_hit(e.ticket, e.hit)

    def remember(self, e: Remember) -> None:
        if self.calls.cache is not None:
            self.calls.cache.remember(e.ticket.task, e.routed.answer, e.routed.cost)

    def start_probes(self, e: StartProbes) -> Any:
        if not e.ticket.probe_models:
            return None
        return self.router.start_probes(e.ticket, self.calls.probe)

    def call(self, e: Call) -> Answer | None:
        return self.calls.call(e.model)

    def fall_back(self, e: FallBack) -> Ticket:
        return self.router.fall_back(e.ticket, e.error)

    def record_failure(self, e: RecordFailure) -> None:
        self.router.record_failure(e.ticket, e.error)

    def finish(self, e: Finish) -> Routed:
        return self.router.finish(e.ticket, e.answer, cache_miss=e.cache_miss)

    def settle(self, e: Settle) -> None:
        e.probes.settle(e.answer)


class AsyncPerformer:
    """Performs the flow's effects with ``await``, against ``router`` and async ``calls``."""

    def __init__(self, router: SmartRouter, calls: Calls) -> None:
        self.router = router
        self.calls = calls

    async def __call__(self, effect: Effect) -> Any:
        return await getattr(self, _STEP[type(effect)])(effect)

    async def begin(self, e: Begin) -> Ticket:
        ticket = await self.router.abegin(e.task, request_id=e.request_id)
        return _with_request(ticket, self.calls.request)

    async def look_up(self, e: LookUp) -> CacheLookup | None:
        cache = self.calls.cache
        return None if cache is None else await cache.alookup(e.ticket.task)

    async def serve_hit(self, e: ServeHit) -> Routed:
        return await self.router.aserve_hit(e.ticket, e.hit)

    async def remember(self, e: Remember) -> None:
        if self.calls.cache is not None:
            await self.calls.cache.aremember(e.ticket.task, e.routed.answer, e.routed.cost)

    async def start_probes(self, e: StartProbes) -> Any:
        if not e.ticket.probe_models:
            return None
        return self.router.astart_probes(e.ticket, self.calls.probe)

    async def call(self, e: Call) -> Answer | None:
        return await self.calls.call(e.model)

    async def fall_back(self, e: FallBack) -> Ticket:
        return await self.router.afall_back(e.ticket, e.error)

    async def record_failure(self, e: RecordFailure) -> None:
        await self.router.arecord_failure(e.ticket, e.error)

    async def finish(self, e: Finish) -> Routed:
        return await self.router.afinish(e.ticket, e.answer, cache_miss=e.cache_miss)

    async def settle(self, e: Settle) -> None:
        await e.probes.asettle(e.answer)


_STEP: dict[type, str] = {
    Begin: "begin",
    LookUp: "look_up",
    ServeHit: "serve_hit",
    Remember: "remember",
    StartProbes: "start_probes",
    Call: "call",
    FallBack: "fall_back",
    RecordFailure: "record_failure",
    Finish: "finish",
    Settle: "settle",
}


def run_flow(flow: Flow, perform: Callable[[Effect], Any]) -> Any:
    """Drive ``flow`` to its end, performing each effect; returns the flow's result."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = perform(effect), None
        except BaseException as exc:
            value, error = None, exc


async def arun_flow(flow: Flow, perform: Callable[[Effect], Awaitable[Any]]) -> Any:
    """Drive ``flow`` to its end, awaiting each effect; returns the flow's result."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = await perform(effect), None
        except BaseException as exc:
            value, error = None, exc


def stream_flow(flow: Flow, perform: Performer) -> Iterator[Streamed]:
    """Drive ``flow``, relaying the answering call's chunks (``perform.calls.call(model)``
    iterates them) as :class:`Streamed` records; the last one carries the ``Routed``."""
    calls = perform.calls
    value: Any = None
    error: BaseException | None = None
    held = _Held(calls.shows)
    ticket: Ticket | None = None
    held_back: list[tuple[Answer | None, list[Any], Ticket]] = []  # calls not for the user
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            routed = stop.value
            break
        value, error = None, None
        if isinstance(effect, ServeHit):  # a stored answer, relayed as the chunks of a stream
            ticket, held = effect.ticket, _Held(calls.shows)
            try:
                for chunk in _hit_chunks(calls, effect):
                    for out in held.add(chunk):
                        yield Streamed(out, ticket)
                value = perform(effect)
            except BaseException as exc:
                error = exc
            continue
        if not isinstance(effect, Call):
            try:
                value = perform(effect)
            except BaseException as exc:
                error = exc
            continue
        if not effect.to_user:  # an answer that may still be rejected: read whole, relay nothing
            try:
                chunks = list(calls.call(effect.model))
                value = _streamed(calls, effect.model, chunks)
                held_back.append((value, chunks, effect.ticket))
            except BaseException as exc:
                error = exc
            continue
        ticket, held = effect.ticket, _Held(calls.shows)
        try:
            for chunk in calls.call(effect.model):
                for out in held.add(chunk):
                    yield Streamed(out, ticket)
            value = _streamed(calls, effect.model, held.chunks)
        except Exception as exc:
            error = Delivered(exc) if held.relayed else exc
        except BaseException as exc:
            error = exc
    accepted = _accepted(routed, held_back)
    if accepted is not None:  # a held-back answer was accepted: relayed now, whole
        chunks, ticket = accepted
        held = _Held(calls.shows)
        held.pending = chunks
    if routed is not None and ticket is not None:
        for out in held.pending[:-1]:
            yield Streamed(out, ticket)
        yield Streamed(held.pending[-1] if held.pending else None, ticket, routed)


async def astream_flow(flow: Flow, perform: AsyncPerformer) -> AsyncIterator[Streamed]:
    """The async twin of :func:`stream_flow` (``perform.calls.call(model)`` returns an async
    iterator of chunks, or an awaitable of one)."""
    calls = perform.calls
    value: Any = None
    error: BaseException | None = None
    held = _Held(calls.shows)
    ticket: Ticket | None = None
    held_back: list[tuple[Answer | None, list[Any], Ticket]] = []  # calls not for the user
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            routed = stop.value
            break
        value, error = None, None
        if isinstance(effect, ServeHit):
            ticket, held = effect.ticket, _Held(calls.shows)
            try:
                for chunk in _hit_chunks(calls, effect):
                    for out in held.add(chunk):
                        yield Streamed(out, ticket)
                value = await perform(effect)
            except BaseException as exc:
                error = exc
            continue
        if not isinstance(effect, Call):
            try:
                value = await perform(effect)
            except BaseException as exc:
                error = exc
            continue
        if not effect.to_user:  # an answer that may still be rejected: read whole, relay nothing
            try:
                stream = await _opened(calls.call(effect.model))
                chunks = [c async for c in stream]
                value = _streamed(calls, effect.model, chunks)
                held_back.append((value, chunks, effect.ticket))
            except BaseException as exc:
                error = exc
            continue
        ticket, held = effect.ticket, _Held(calls.shows)
        try:
            stream = await _opened(calls.call(effect.model))
            async for chunk in stream:
                for out in held.add(chunk):
                    yield Streamed(out, ticket)
            value = _streamed(calls, effect.model, held.chunks)
        except Exception as exc:
            error = Delivered(exc) if held.relayed else exc
        except BaseException as exc:
            error = exc
    accepted = _accepted(routed, held_back)
    if accepted is not None:  # a held-back answer was accepted: relayed now, whole
        chunks, ticket = accepted
        held = _Held(calls.shows)
        held.pending = chunks
    if routed is not None and ticket is not None:
        for out in held.pending[:-1]:
            yield Streamed(out, ticket)
        yield Streamed(held.pending[-1] if held.pending else None, ticket, routed)


def _accepted(
    routed: Routed | None, held_back: list[tuple[Answer | None, list[Any], Ticket]]
) -> tuple[list[Any], Ticket] | None:
    """The chunks of the held-back call whose answer the route served (a cascade step it
    accepted), if it served one: the route decided before any of them reached the user."""
    source = getattr(routed.answer, "source", None) if routed is not None else None
    if source is None:
        return None
    for answer, chunks, ticket in held_back:
        if answer is source:
            return list(chunks), ticket
    return None


class _Held:
    """The chunks of one streamed call: all of them (for its answer), and those read but not
    relayed yet. The last chunk is always held (it will carry the certificate), and so is every
    chunk until one shows the user something: a call failing before that can still fall back."""

    def __init__(self, shows: Callable[[Any], bool]) -> None:
        self.shows = shows
        self.chunks: list[Any] = []
        self.pending: list[Any] = []
        self.shown = False
        #: Some chunk has reached the caller: a failure now cannot fall back.
        self.relayed = False

    def add(self, chunk: Any) -> list[Any]:
        """Take ``chunk``; returns the chunks to relay now."""
        self.chunks.append(chunk)
        self.pending.append(chunk)
        self.shown = self.shown or self.shows(chunk)
        if not (self.shown and len(self.pending) > 1):
            return []
        out = self.pending[:-1]
        del self.pending[:-1]
        self.relayed = True
        return out


def _hit_chunks(calls: Calls, effect: ServeHit) -> list[Any]:
    if calls.cache is None:
        raise TypeError("Calls.cache is needed to stream a cache hit")
    return calls.cache.chunks(effect.hit.answer)


async def _opened(stream: Any) -> Any:
    """An async iterator of chunks, from one or from an awaitable of one."""
    return stream if hasattr(stream, "__aiter__") else await stream


def _streamed(calls: Calls, model: str, chunks: list[Any]) -> Answer | None:
    if calls.streamed is None:
        raise TypeError("Calls.streamed is needed to stream: it turns chunks into an Answer")
    return calls.streamed(model, chunks)
