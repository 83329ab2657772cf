"""The serving flow: one request from decision to recorded probe, written once, doing no I/O.

In the manner of httpx's ``Auth.auth_flow``, :func:`serve_flow` is a generator that *yields*
what to do next (an effect of :mod:`.effects`: begin, start probes, call, fall back, finish,
settle) and receives each result. A driver (:mod:`.drivers`) performs the effects: the sync and
async drivers for a whole answer, the streaming drivers relaying chunks, ``smart run``'s driver
with its saved state, the paper simulation's driver drawing answers at random. So the order of
the steps, and what happens when a call fails, exists in this one function; a new step (a cache
lookup, a cascade's escalation) is a change here or in a route, never in the drivers.

The steps:

1. **Begin**: the policy decides (route, probe or not) and the request is reserved in the store.
   The decision is taken blind to the answer cache, so probes stay a uniform draw of requests.
2. **LookUp**: the answer cache is asked for the request. An exact hit is the reference's own
   answer to this very request: it is served (**ServeHit**) instead of any call, whatever route
   was drawn, which can only lower the share of answers that differ from the reference's; on a
   probe it also stands in for the reference's answer the probed routes are compared with.
   A semantic hit (an answer to a similar request) is served only when the drawn route is a
   semantic one whose threshold it meets; on a probe it is what the probed semantic routes
   would have served, compared with the reference's answer like a candidate's.
3. **StartProbes**: on a probe, the probed routes' models are called beside the reference.
4. The ticket's route serves the request (its ``serve`` yields the calls). If a candidate
   fails before the user has seen anything, the failure is recorded (never as a disagreement)
   and the request falls back to the reference; if the reference fails, its error propagates.
   If part of a streamed answer had reached the user, the failure is counted and re-raised.
5. **Finish** records the answer the user got and its cost; **Settle** hands the reference's
   answer to the probe, which is recorded once every probed call is done; **Remember** stores
   the answer in the cache when the reference gave it.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from .effects import (
    Begin,
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
from .routes import RouteAnswer, RouteTable
from .ticket import Routed

__all__ = ["serve_flow"]


def serve_flow(
    routes: RouteTable, task: str | None = None, request_id: str | None = None
) -> Generator[Effect, Any, Routed | None]:
    """Serve one request of ``task`` over ``routes``; returns its :class:`Routed` (``None`` for
    a stream that ended with nothing to record)."""
    ticket = yield Begin(task, request_id)
    found = yield LookUp(ticket)
    if found is not None:
        ticket = replace(ticket, cached=found)
    hit = found.exact if found is not None else None
    if hit is None and found is not None:  # a semantic route serves a hit close enough
        cache_hit = getattr(routes[ticket.route], "cache_hit", None)
        hit = cache_hit(found) if cache_hit is not None else None
    probes = yield StartProbes(ticket)
    if hit is not None:
        routed = yield ServeHit(replace(ticket, route=hit.route), hit)
        if probes is not None:
            yield Settle(probes, routed.answer)
        return routed
    try:
        while True:
            try:
                answer = yield from routes[ticket.route].serve(ticket)
                break
            except Delivered as cut:
                yield RecordFailure(ticket, cut.error)
                raise cut.error from None
            except Exception as exc:
                if ticket.route == routes.reference.name:
                    raise
                _cancel(probes)
                ticket = yield FallBack(ticket, exc)
    except BaseException:
        _cancel(probes)
        raise
    if answer is None:  # a stream that ended with nothing: no answer to record or compare
        _cancel(probes)
        return None
    routed = yield Finish(ticket, answer, cache_miss=found is not None)
    if probes is not None:
        yield Settle(probes, routed.answer)
    if found is not None and _by_reference(routed, routes.reference.name):
        yield Remember(ticket, routed)
    return routed


def _by_reference(routed: Routed, reference: str) -> bool:
    """The reference alone answered this request (routed to it, or a route whose only call was
    the reference's, as a semantic route's miss): its answer may be stored for the request."""
    if routed.route == reference:
        return True
    answer = routed.answer
    return isinstance(answer, RouteAnswer) and answer.step_name == "ref" and len(answer.calls) == 1


def _cancel(probes: Any) -> None:
    """Abandon the probe calls (cancelling is bookkeeping, not I/O: the run stops its calls)."""
    if probes is not None:
        probes.cancel()
