"""Cascades as routes: served through the one flow (every driver), judged on probes from the
answers the probe collected, and recorded at the cost of every call they make or would make."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from smart_core import Answer, SmartConfig, SmartRouter
from smart_core.engine.cascade import CascadeRoute
from smart_core.engine.drivers import AsyncPerformer, Calls, Performer, run_flow, stream_flow
from smart_core.engine.effects import Call
from smart_core.engine.flow import serve_flow
from smart_core.engine.probe_run import CUT_SHORT
from smart_core.engine.routes import RouteAnswer
from smart_core.policy import keys as K
from smart_core.policy.base import PRIOR_CALLS
from smart_core.task.cascades import Cascade, CascadeStep
from smart_core.task.comparators import parse_comparator

REF, MINI, NANO = "gpt-4o", "gpt-4o-mini", "gpt-4.1-nano"
LABEL_A = "cascade:gpt-4o-mini[label=A]>ref"
AGREE = "cascade:gpt-4o-mini+gpt-4.1-nano[agree]>ref"
COST = {REF: 1.0, MINI: 0.01, NANO: 0.002}
CHOICE = parse_comparator("choice:A,B,C,D")


def _config(**kw) -> SmartConfig:
    kw.setdefault("cascades", "auto")
    return SmartConfig(
        task="t",
        epsilon=0.1,
        reference=REF,
        candidates=[MINI, NANO],
        comparator="choice:A,B,C,D",
        audit_rate=0.0,
        **kw,
    )


def _drive(route, answers: dict[str, str]):
    """Run ``route.serve`` by hand: the calls it makes (model, to_user) and its answer."""
    gen = route.serve(ticket=None)
    made, value = [], None
    try:
        while True:
            effect = gen.send(value)
            assert isinstance(effect, Call)
            made.append((effect.model, effect.to_user))
            value = Answer(answers[effect.model], model=effect.model)
    except StopIteration as stop:
        return made, stop.value


def test_a_label_cascade_keeps_an_accepted_step_and_escalates_the_rest():
    route = CascadeRoute(Cascade([CascadeStep(MINI, "label:A")]), REF, CHOICE)
    assert route.name == LABEL_A and route.models == (MINI, REF)
    made, answer = _drive(route, {MINI: "A", REF: "B"})
    assert made == [(MINI, False)]  # decided before anything reaches the user
    assert isinstance(answer, RouteAnswer) and answer.text == "A" and answer.model == MINI
    assert (answer.step, answer.step_name, answer.score) == (0, "gpt-4o-mini[label=A]", 1.0)
    assert [a.model for a in answer.calls] == [MINI]
    made, answer = _drive(route, {MINI: "C", REF: "B"})
    assert made == [(MINI, False), (REF, True)]  # the reference's answer streams as it comes
    assert answer.text == "B" and answer.step_name == "ref" and answer.score is None
    assert [a.model for a in answer.calls] == [MINI, REF]


def test_a_consistency_cascade_serves_the_first_answer_when_both_agree():
    route = CascadeRoute(Cascade([CascadeStep(MINI, f"agree:{NANO}")]), REF, CHOICE)
    assert route.name == AGREE
    made, answer = _drive(route, {MINI: "(B) because", NANO: "B", REF: "C"})
    assert made == [(MINI, False), (NANO, False)]
    assert answer.text == "(B) because" and answer.model == MINI
    made, answer = _drive(route, {MINI: "A", NANO: "B", REF: "C"})
    assert made == [(MINI, False), (NANO, False), (REF, True)] and answer.text == "C"


def test_probe_answer_is_what_serving_would_have_answered_without_a_call():
    route = CascadeRoute(Cascade([CascadeStep(MINI, f"agree:{NANO}")]), REF, CHOICE)
    for texts in ({MINI: "A", NANO: "A", REF: "B"}, {MINI: "A", NANO: "D", REF: "B"}):
        _, served = _drive(route, texts)
        answers = {m: Answer(t, model=m) for m, t in texts.items()}
        would = route.probe_answer(answers)
        assert would.text == served.text and would.step == served.step
        assert [a.model for a in would.calls] == [a.model for a in served.calls]
    # A failed step call is a failure (served, the request would fall back), returned as is;
    # a call cut short stays a differing answer.
    failure = RuntimeError("rate limited")
    assert route.probe_answer({MINI: failure, NANO: Answer("A"), REF: Answer("A")}) is failure
    assert route.probe_answer({MINI: Answer("A"), REF: Answer("A")}) is CUT_SHORT


def _to(ticket, route: str):
    decision = replace(ticket.decision, route=route, probe=False, probe_models=())
    return replace(ticket, decision=decision, route=route)


def _forced(router: SmartRouter, route: str) -> Performer:
    """A performer whose requests all go to ``route`` (the policy is tested elsewhere)."""

    class Forced(Performer):
        def begin(self, e):
            return _to(super().begin(e), route)

    return Forced


def _calls(texts: dict[str, str]) -> Calls:
    def call(model: str) -> Answer:
        return Answer(texts[model], model=model, cost=COST[model])

    return Calls(call=call, probe=call)


def test_a_served_cascade_is_recorded_at_the_cost_of_every_call_under_its_name():
    router = SmartRouter(_config(), seed=1, wait_for_probes=True)
    perform = _forced(router, LABEL_A)(router, _calls({MINI: "C", REF: "B"}))
    routed = run_flow(serve_flow(router.routes, "t"), perform)
    assert routed.route == LABEL_A and routed.answer.text == "B"
    assert routed.cost == pytest.approx(1.01)
    assert routed.certificate.step == "ref" and routed.certificate.route == LABEL_A
    c = router.store.read("t")
    assert c[K.calls(LABEL_A)] == 1 and c[K.call_cost(LABEL_A)] == pytest.approx(1.01)
    assert c[K.calls(MINI)] == 1 and c[K.call_cost(MINI)] == pytest.approx(0.01)
    assert c[K.calls(REF)] == 1 and c[K.REF_N] == 1  # the escalation was a reference call
    assert c[K.SPENT] == pytest.approx(1.01)  # the money once, not once per counter
    perform = _forced(router, LABEL_A)(router, _calls({MINI: "A", REF: "B"}))
    routed = run_flow(serve_flow(router.routes, "t"), perform)
    assert routed.answer.text == "A" and routed.cost == pytest.approx(0.01)
    cert = routed.certificate.to_dict()
    assert (cert["route"], cert["step"], cert["score"]) == (LABEL_A, "gpt-4o-mini[label=A]", 1.0)
    # Its expected cost: the mean of what it spent, shrunk toward its prior by PRIOR_CALLS calls
    # (a route calling several models spends very different amounts per request).
    policy, counters = router.policy("t"), router.store.read("t")
    unseen = {k: v for k, v in counters.items() if LABEL_A not in k}
    prior = policy.expected_cost(unseen, LABEL_A)
    assert policy.expected_cost(counters, LABEL_A) == pytest.approx(
        (PRIOR_CALLS * prior + 1.01 + 0.01) / (PRIOR_CALLS + 2)
    )


def test_the_async_driver_serves_a_cascade_alike():
    router = SmartRouter(_config(), seed=1, wait_for_probes=True)

    class Forced(AsyncPerformer):
        async def begin(self, e):
            return _to(await super().begin(e), AGREE)

    async def call(model: str) -> Answer:
        return Answer({MINI: "D", NANO: "D", REF: "A"}[model], model=model, cost=COST[model])

    from smart_core.engine.drivers import arun_flow

    routed = asyncio.run(
        arun_flow(serve_flow(router.routes, "t"), Forced(router, Calls(call=call, probe=call)))
    )
    assert routed.answer.text == "D" and routed.cost == pytest.approx(0.012)
    assert routed.certificate.step == "gpt-4o-mini+gpt-4.1-nano[agree]"


def _stream_calls(streams: dict[str, list[str]]) -> Calls:
    asked: list[str] = []

    def stream(model: str):
        asked.append(model)
        yield from streams[model]

    def probe(model: str) -> Answer:
        return Answer("".join(streams[model]), model=model, cost=COST[model])

    calls = Calls(
        call=stream,
        probe=probe,
        streamed=lambda m, chunks: (
            Answer("".join(chunks), model=m, cost=COST[m]) if chunks else None
        ),
    )
    return calls, asked


def test_a_stream_relays_only_the_answer_the_cascade_accepted():
    router = SmartRouter(_config(), seed=1, wait_for_probes=True)
    # Accepted: the held-back step is relayed whole, once the cascade has decided.
    calls, asked = _stream_calls({MINI: ["(", "A", ")"], REF: ["B"]})
    out = list(stream_flow(serve_flow(router.routes, "t"), _forced(router, LABEL_A)(router, calls)))
    assert [o.chunk for o in out] == ["(", "A", ")"] and asked == [MINI]
    assert out[-1].routed.answer.text == "(A)" and out[-1].routed.certificate.step.endswith("A]")
    # Rejected: not one of the step's chunks reaches the user, only the reference's.
    calls, asked = _stream_calls({MINI: ["C", " maybe"], REF: ["B", "."]})
    out = list(stream_flow(serve_flow(router.routes, "t"), _forced(router, LABEL_A)(router, calls)))
    assert [o.chunk for o in out] == ["B", "."] and asked == [MINI, REF]
    assert out[-1].routed.answer.text == "B." and out[-1].routed.cost == pytest.approx(1.01)


def test_a_probe_measures_each_cascade_from_one_call_per_model():
    router = SmartRouter(_config(), seed=1, wait_for_probes=True)
    ticket = router.begin("t")
    routes = (MINI, NANO, LABEL_A, AGREE, "cascade:gpt-4.1-nano[label=A]>ref")
    decision = replace(ticket.decision, probe=True, probe_models=routes, route=REF)
    ticket = replace(ticket, decision=decision, route=REF)
    assert router.routes.models_to_probe(routes) == (MINI, NANO)  # each model once
    reference = Answer("A", model=REF, cost=1.0)
    answers = {MINI: Answer("A", model=MINI, cost=0.01), NANO: Answer("B", model=NANO, cost=0.002)}
    inc = router.record_probe(ticket, reference, answers)
    agreed = {r: inc[K.agreements(r)] for r in routes}
    # mini says A (agrees); nano says B; label=A on mini keeps A; nano's B escalates to the
    # reference (agrees by definition); mini and nano disagree, so AGREE escalates too.
    assert agreed == {MINI: 1, NANO: 0, LABEL_A: 1, AGREE: 1, routes[-1]: 1}
    assert inc[K.SPENT] == pytest.approx(0.012)  # the models called, once each
    assert inc[K.SPENT_PROBE_CANDIDATES] == pytest.approx(0.012)
    assert inc[K.call_cost(LABEL_A)] == pytest.approx(0.01)  # would have paid mini only
    assert inc[K.call_cost(AGREE)] == pytest.approx(1.012)  # both, then the reference
    assert inc[K.call_cost(routes[-1])] == pytest.approx(1.002)
    assert inc[K.calls(MINI)] == 1 and inc[K.call_cost(MINI)] == pytest.approx(0.01)


def test_a_scorer_that_raises_on_a_probe_is_a_failure_not_an_agreement():
    def broken(answer):
        raise ValueError("no score")

    cascade = Cascade([CascadeStep(MINI, broken)], name="cascade:broken")
    router = SmartRouter(_config(cascades=[cascade]), seed=1, wait_for_probes=True)
    ticket = router.begin("t")
    decision = replace(ticket.decision, probe=True, probe_models=("cascade:broken",), route=REF)
    inc = router.record_probe(
        replace(ticket, decision=decision, route=REF),
        Answer("A", model=REF, cost=1.0),
        {MINI: Answer("A", model=MINI, cost=0.01)},
    )
    assert inc[K.failures("cascade:broken")] == 1 and K.agreements("cascade:broken") not in inc


def test_the_router_builds_a_route_per_cascade_and_the_policy_mixes_them():
    router = SmartRouter(_config(), seed=1)
    names = [r.name for r in router.routes]
    assert names[:3] == [REF, MINI, NANO] and LABEL_A in names and AGREE in names
    assert len(names) == 3 + 2 * 4 + 1  # 4 labels per candidate, one pair
    policy = router.policy("t")
    assert LABEL_A in policy.candidates and AGREE in policy.candidates
    prior = policy.expected_cost({}, AGREE)
    assert prior == pytest.approx(
        policy.expected_cost({}, MINI)
        + policy.expected_cost({}, NANO)
        + 0.5 * policy.expected_cost({}, REF)
    )
