"""The serving flow (smart_core.engine.flow) driven by hand: it does no I/O, so each test plays
the driver, answering the effects it yields and checking their order."""

from __future__ import annotations

import pytest

from smart_core.engine.effects import (
    Begin,
    Call,
    Delivered,
    FallBack,
    Finish,
    LookUp,
    RecordFailure,
    Settle,
    StartProbes,
)
from smart_core.engine.flow import serve_flow
from smart_core.engine.routes import ModelRoute, RouteTable
from smart_core.engine.ticket import Routed, Ticket
from smart_core.policy import Decision
from smart_core.policy.certificate import Certificate
from smart_core.task.answer import Answer

ROUTES = RouteTable.of_models("ref", ["cheap", "mid"])


def _ticket(route: str, *, probe: bool = False, probed: tuple[str, ...] = ()) -> Ticket:
    cert = Certificate("t", route, probe, {}, 0.0, 0, 0.05, 0.05, "anytime", "request", 0.05)
    decision = Decision(route, probe, probed, False, cert, {})
    return Ticket("r1", decision, route)


class Probes:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _routed(ticket: Ticket, answer: Answer) -> Routed:
    return Routed(
        answer, ticket.route, ticket.probe, 1.0, ticket.certificate, "r1", ticket.fallback
    )


def test_a_routed_request_begins_calls_and_finishes():
    flow = serve_flow(ROUTES, "t", "r1")
    assert flow.send(None) == Begin("t", "r1")
    ticket = _ticket("cheap")
    assert flow.send(ticket) == LookUp(ticket)
    assert flow.send(None) == StartProbes(ticket)  # None: the request has no answer cache
    assert flow.send(None) == Call(ticket, "cheap")
    answer = Answer("yes", model="cheap")
    assert flow.send(answer) == Finish(ticket, answer)
    routed = _routed(ticket, answer)
    with pytest.raises(StopIteration) as stop:
        flow.send(routed)
    assert stop.value.value is routed


def test_a_probe_is_settled_with_the_answer_the_user_got():
    flow = serve_flow(ROUTES)
    flow.send(None)
    ticket = _ticket("ref", probe=True, probed=("cheap", "mid"))
    flow.send(ticket)
    flow.send(None)  # LookUp: no answer cache
    probes = Probes()
    assert flow.send(probes) == Call(ticket, "ref")
    answer = Answer("yes", model="ref")
    flow.send(answer)
    routed = _routed(ticket, answer)
    assert flow.send(routed) == Settle(probes, answer)
    with pytest.raises(StopIteration):
        flow.send(None)
    assert not probes.cancelled


def test_a_failing_candidate_falls_back_to_the_reference():
    flow = serve_flow(ROUTES)
    flow.send(None)
    ticket = _ticket("cheap")
    flow.send(ticket)
    flow.send(None)  # LookUp: no answer cache
    flow.send(None)
    error = TimeoutError("slow")
    effect = flow.throw(error)
    assert effect == FallBack(ticket, error)
    moved = Ticket("r1", ticket.decision, "ref", fallback=True)
    assert flow.send(moved) == Call(moved, "ref")
    answer = Answer("yes", model="ref")
    assert flow.send(answer) == Finish(moved, answer)


def test_a_failing_reference_raises_its_own_error_and_cancels_the_probe():
    flow = serve_flow(ROUTES)
    flow.send(None)
    ticket = _ticket("ref", probe=True, probed=("cheap",))
    flow.send(ticket)
    flow.send(None)  # LookUp: no answer cache
    probes = Probes()
    flow.send(probes)
    with pytest.raises(ConnectionError, match="down"):
        flow.throw(ConnectionError("down"))
    assert probes.cancelled


def test_the_reference_failing_after_a_fallback_raises():
    flow = serve_flow(ROUTES)
    flow.send(None)
    ticket = _ticket("mid")
    flow.send(ticket)
    flow.send(None)  # LookUp: no answer cache
    flow.send(None)
    flow.throw(TimeoutError("slow"))
    moved = Ticket("r1", ticket.decision, "ref", fallback=True)
    flow.send(moved)
    with pytest.raises(ConnectionError):
        flow.throw(ConnectionError("down"))


def test_a_stream_cut_after_the_user_saw_part_of_it_is_counted_not_retried():
    flow = serve_flow(ROUTES)
    flow.send(None)
    ticket = _ticket("cheap")
    flow.send(ticket)
    flow.send(None)  # LookUp: no answer cache
    flow.send(None)
    error = ConnectionResetError("cut")
    assert flow.throw(Delivered(error)) == RecordFailure(ticket, error)
    with pytest.raises(ConnectionResetError, match="cut"):
        flow.send(None)


def test_a_stream_with_nothing_to_record_cancels_the_probe_and_returns_none():
    flow = serve_flow(ROUTES)
    flow.send(None)
    ticket = _ticket("ref", probe=True, probed=("cheap",))
    flow.send(ticket)
    flow.send(None)  # LookUp: no answer cache
    probes = Probes()
    flow.send(probes)
    with pytest.raises(StopIteration) as stop:
        flow.send(None)
    assert stop.value.value is None
    assert probes.cancelled


def test_cancellation_cancels_the_probe_and_propagates():
    flow = serve_flow(ROUTES)
    flow.send(None)
    ticket = _ticket("ref", probe=True, probed=("cheap",))
    flow.send(ticket)
    flow.send(None)  # LookUp: no answer cache
    probes = Probes()
    flow.send(probes)
    with pytest.raises(KeyboardInterrupt):
        flow.throw(KeyboardInterrupt())
    assert probes.cancelled


def test_routes_say_what_a_probe_must_call_and_what_each_route_would_have_answered():
    assert ROUTES.models_to_probe(["cheap", "mid"]) == ("cheap", "mid")
    answers = {"cheap": Answer("a", model="cheap")}
    assert ROUTES["cheap"].probe_answer(answers) is answers["cheap"]
    from smart_core.engine.probe_run import CUT_SHORT

    assert ROUTES["mid"].probe_answer(answers) is CUT_SHORT
    with pytest.raises(KeyError, match="no route named 'gone'"):
        ROUTES["gone"]
    with pytest.raises(ValueError, match="two routes"):
        RouteTable(ModelRoute("ref"), [ModelRoute("a"), ModelRoute("a")])
