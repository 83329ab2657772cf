"""What each serving step adds to a task's counters (see :mod:`smart_core.policy.keys`).

Pure functions: the router writes what they return in one atomic, idempotent store step per
serving step, so a retried step never counts twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from ..policy import keys as K
from ..policy import probe_failure, probe_outcome
from ..task.answer import Answer
from ..task.learned_scorer import TrainingOverlapError
from .probe_run import CUT_SHORT
from .routes import RouteAnswer, RouteTable, cost_of_route
from .semantic_route import NEAREST, nearest_answer
from .ticket import Ticket

__all__ = [
    "CUT_SHORT_WARNING",
    "SPENT_ATTRIBUTE",
    "answered",
    "fell_back",
    "probed",
    "served",
    "spent_before_failing",
    "trained",
]

#: The attribute a route sets on the exception of a call that failed after earlier calls of
#: the same request had answered (a cascade's accepted-or-not steps): those answers, paid for.
SPENT_ATTRIBUTE = "smart_spent"

CUT_SHORT_WARNING = (
    "a probe was cut short: its candidates' calls were cancelled before they answered (the event "
    "loop ended, e.g. asyncio.run() returning, or the router was closed without waiting). Such "
    "probes count as differing answers, so the candidates look worse than they are. Await "
    "router.aflush() before the loop ends, use router.run(), or serve from one long-lived loop."
)


def answered(route: str, reference: str, cost: float) -> dict[str, float]:
    """The user got ``route``'s answer at ``cost``; a reference answer also feeds the
    reference-only estimate (escalations and fallbacks included)."""
    inc: dict[str, float] = {K.ANSWERED: 1.0}
    _add_call(inc, route, cost)
    if route == reference:
        inc[K.REF_N] = 1.0
        inc[K.REF_COST] = cost
        inc[K.REF_COST_SQ] = cost * cost
    return inc


def trained(
    reference: str, answers: Mapping[str, Answer], cost_of: Callable[[Answer], float]
) -> dict[str, float]:
    """One item of a batch's training stage (``smart run`` fitting a learned scorer): the user
    got the reference's answer, and the learned steps' models were called beside it (paid as a
    probe's candidate calls). Counted under ``trained``, never as a request or a probe of the
    batch: the batch the policy certifies is the rest of the run."""
    inc = answered(reference, reference, cost_of(answers[reference]))
    inc[K.TRAINED] = 1.0
    for model, answer in answers.items():
        if model != reference:
            cost = cost_of(answer)
            _add_call(inc, model, cost)
            inc[K.SPENT_PROBE_CANDIDATES] = inc.get(K.SPENT_PROBE_CANDIDATES, 0.0) + cost
    return inc


def fell_back(route: str, reference: str) -> dict[str, float]:
    """``route`` failed and the request went to the reference: a failure, never a
    disagreement (rate limits and timeouts say nothing about answer quality)."""
    if route == reference:
        raise ValueError(
            "fall_back: the ticket is already routed to the reference "
            f"({route!r}); re-raise the reference's error instead"
        )
    return {K.failures(route): 1.0, K.fallbacks(route): 1.0}


def spent_before_failing(
    route: str, error: BaseException | None, cost_of: Callable[[Answer], float]
) -> dict[str, float]:
    """What a route had spent on a request before one of its calls failed (a cascade whose
    second step or reference call raised after the first step answered): each call under its
    model's name and as money spent, and the total under the route's name, so the route's
    expected cost counts what its failures cost. Nothing when the error carries no calls."""
    calls = getattr(error, SPENT_ATTRIBUTE, None) or ()
    inc: dict[str, float] = {}
    total = 0.0
    for call in calls:
        cost = cost_of(call)
        total += cost
        _add_call(inc, call.model, cost)
    if calls:
        _add_model_call(inc, route, total)
    return inc


def served(
    route: str, reference: str, answer: Answer, cost_of: Callable[[Answer], float]
) -> tuple[float, dict[str, float]]:
    """The user got ``route``'s ``answer``: its cost (every call the route made for it) and the
    counters to add. A route of several calls (a cascade) is recorded under its own name, and
    each call under its model's too (model-level counters keep meaning "calls of this model"),
    with the money counted once."""
    cost = cost_of_route(answer, cost_of)
    inc = answered(route, reference, cost)
    if isinstance(answer, RouteAnswer) and answer.calls:
        for call in answer.calls:
            _add_model_call(inc, call.model, cost_of(call))
            if call.model == reference:
                c = cost_of(call)
                inc[K.REF_N] = inc.get(K.REF_N, 0.0) + 1.0
                inc[K.REF_COST] = inc.get(K.REF_COST, 0.0) + c
                inc[K.REF_COST_SQ] = inc.get(K.REF_COST_SQ, 0.0) + c * c
    return cost, inc


def probed(
    ticket: Ticket,
    reference: Answer,
    answers: Mapping[str, Answer | BaseException],
    routes: RouteTable,
    comparator: Callable[[Answer, Answer], Any],
    cost_of: Callable[[Answer], float],
    warn: Callable[[str, str], None],
) -> dict[str, float]:
    """Every probed route's outcome against the reference's answer, from the answers the probe
    collected by model; ``warn(what, message)`` is called for what the user should hear of.

    Money is counted per model called (each once, whatever number of routes read its answer);
    a route of several calls (a cascade) also gets, under its own name, the cost of the calls it
    *would* have made, so its expected cost is learned from probes as a model's is."""
    inc: dict[str, float] = {}
    ref_name = routes.reference.name
    for model, answer in answers.items():
        if model == ref_name or not isinstance(answer, Answer):
            continue
        if not answer.model:
            answer.model = model
        cost = cost_of(answer)
        _add_call(inc, model, cost)
        inc[K.SPENT_PROBE_CANDIDATES] = inc.get(K.SPENT_PROBE_CANDIDATES, 0.0) + cost
    with_reference = {**answers, ref_name: reference}
    nearest = nearest_answer(ticket.cached)  # what the semantic routes would serve, if close
    if nearest is not None:
        with_reference[NEAREST] = nearest
    # A screening probe's costs are kept apart: the certification stage's share of delta is
    # chosen from screening alone (smart_core.policy.screened_batch).
    screening = ticket.decision.stage == "screening"
    if screening:
        _add_screen_call(inc, ref_name, cost_of(reference))
    for c in ticket.probe_models:
        route = routes[c]
        try:
            if getattr(route, "reads_request", False):  # a cascade whose scorer may read it
                answer = route.probe_answer(
                    with_reference, request=ticket.request, probe_id=ticket.request_id
                )
            else:
                answer = route.probe_answer(with_reference)
        except TrainingOverlapError:  # a learned scorer counted on its own training probes
            raise
        except Exception as exc:  # a scorer that raises: served, the request falls back
            answer = exc
        if answer is CUT_SHORT or isinstance(answer, asyncio.CancelledError):
            # Never answered because the call was cancelled (the loop ended, the router was
            # closed), not because it failed: routed, this call would have run and served
            # whatever it returns, so it stays in the sample as a differing answer.
            _merge(inc, probe_outcome(ticket.decision, c, False))
            _merge(inc, {K.cut_short(c): 1.0})
            warn("cut", CUT_SHORT_WARNING)
            continue
        if not isinstance(answer, Answer):  # the call raised: a failure, as when routed
            _merge(inc, probe_failure(ticket.decision, c))
            continue
        if route.models != (c,) and getattr(route, "costed_on_probes", True):
            # a route of several calls: its would-be cost, by its name
            _add_model_call(inc, c, cost_of_route(answer, cost_of))
        if screening:
            _add_screen_call(inc, c, cost_of_route(answer, cost_of))
        try:
            agreed = bool(comparator(answer, reference))
        except Exception as exc:
            # An answer that cannot be compared is a differing answer, never a missing one:
            # left out, the candidate would be profiled on its well-formed answers only and
            # then serve its malformed ones unchecked.
            agreed = False
            _merge(inc, {K.compare_errors(c): 1.0})
            warn(
                f"compare:{c}",
                f"task {ticket.task!r}: the comparator {_comparator_name(comparator)} raised on "
                f"{c}'s answer ({type(exc).__name__}: {exc}); such answers count as differing "
                "from the reference's. Make the comparator return False for answers it cannot "
                "read.",
            )
        _merge(inc, probe_outcome(ticket.decision, c, agreed))
    return inc


def _comparator_name(comparator: Any) -> str:
    name = getattr(comparator, "name", None) or getattr(comparator, "__name__", None)
    return repr(name or comparator)


def _add_call(inc: dict[str, float], model: str, cost: float) -> None:
    _add_model_call(inc, model, cost)
    inc[K.SPENT] = inc.get(K.SPENT, 0.0) + cost


def _add_model_call(inc: dict[str, float], name: str, cost: float) -> None:
    """One call's count and cost under ``name`` (a model's or a route's), spending nothing:
    the money is counted where the call was paid for."""
    inc[K.calls(name)] = inc.get(K.calls(name), 0.0) + 1.0
    inc[K.call_cost(name)] = inc.get(K.call_cost(name), 0.0) + cost


def _add_screen_call(inc: dict[str, float], model: str, cost: float) -> None:
    inc[K.screen_calls(model)] = inc.get(K.screen_calls(model), 0.0) + 1.0
    inc[K.screen_cost(model)] = inc.get(K.screen_cost(model), 0.0) + cost


def _merge(inc: dict[str, float], more: Mapping[str, float]) -> None:
    for key, value in more.items():
        inc[key] = inc.get(key, 0.0) + value
