"""A function scorer may read the request: ``fn(request, answer)`` gets what the caller passed
(served and on a probe alike), ``fn(answer)`` keeps working; the form is read off the
signature, and a function of neither form is refused at start-up."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import replace
from typing import Any

import pytest

from smart_core import Answer, SmartConfig, SmartRouter
from smart_core.errors import ConfigError
from smart_core.policy import keys as K
from smart_core.task.cascades import Cascade, CascadeStep
from smart_core.task.comparators import parse_comparator
from smart_core.task.scorers import CallableScorer, score

REF, MINI = "gpt-4o", "gpt-4o-mini"
CHOICE = parse_comparator("choice:A,B")


def test_the_form_is_read_off_the_signature():
    assert not CallableScorer(lambda answer: 1.0).reads_request
    assert CallableScorer(lambda request, answer: 1.0).reads_request
    assert CallableScorer(lambda *args: 1.0).reads_request
    assert not CallableScorer(lambda answer, floor=0.5: 1.0).reads_request

    def two(request, answer, *, strict=False):
        return 1.0

    assert CallableScorer(two).reads_request
    assert CallableScorer(functools.partial(lambda k, request, answer: 1.0, 3)).reads_request
    assert not CallableScorer(len).reads_request  # builtin: one argument


def test_a_function_of_neither_form_is_refused_naming_the_fix():
    with pytest.raises(ConfigError, match=r"takes \(answer\) or \(request, answer\)"):
        CallableScorer(lambda a, b, c: 1.0)
    with pytest.raises(ConfigError, match="def my_scorer"):
        CascadeStep(MINI, lambda: 1.0)


def test_score_hands_the_request_only_to_scorers_that_read_it():
    seen = []
    two = CallableScorer(lambda request, answer: seen.append((request, answer.text)) or 1.0)
    assert score(two, Answer("A"), {}, CHOICE, request="hi") == 1.0
    assert seen == [("hi", "A")]
    one = CallableScorer(lambda answer: 0.25)
    assert score(one, Answer("A"), {}, CHOICE, request="hi") == 0.25


def _router(fn: Any, *, probe: bool) -> tuple[SmartRouter, str]:
    cascade = Cascade([CascadeStep(MINI, fn)], name="verified")
    config = SmartConfig(
        task="t", epsilon=0.1, reference=REF, candidates=[MINI], cascades=[cascade],
        comparator="choice:A,B", audit_rate=0.0,
    )  # fmt: skip

    async def ref(request: Any) -> Answer:
        return Answer("B")

    async def mini(request: Any) -> Answer:
        return Answer("A")

    router = SmartRouter(config, {REF: ref, MINI: mini}, seed=0)
    begin = router.abegin

    async def forced(*a: Any, **k: Any) -> Any:
        ticket = await begin(*a, **k)
        route = REF if probe else "verified"
        probed = ("verified",) if probe else ()
        decision = replace(ticket.decision, route=route, probe=probe, probe_models=probed)
        return replace(ticket, decision=decision, route=route)

    router.abegin = forced
    return router, "verified"


@pytest.mark.parametrize("probe", [False, True])
def test_the_request_reaches_the_scorer_served_and_probed(probe: bool):
    seen: list[Any] = []

    def verifier(request, answer):
        seen.append(request)
        return 1.0 if "trust" in request["question"] else 0.0

    router, name = _router(verifier, probe=probe)
    a = router.run({"question": "trust me"})
    b = router.run({"question": "check it"})
    assert seen == [{"question": "trust me"}, {"question": "check it"}]
    if probe:
        counters = router.store.read("t")
        assert counters[K.probes_of(name)] == 2
        assert counters[K.agreements(name)] == 1  # kept "A" once (differs), escalated once
    else:
        assert (a.answer.text, b.answer.text) == ("A", "B")
        assert (a.certificate.step, b.certificate.step) == ("gpt-4o-mini[verifier]", "ref")


def test_the_async_path_and_a_one_argument_scorer():
    router, _ = _router(lambda answer: 1.0, probe=False)
    routed = asyncio.run(router.arun("anything"))
    assert routed.answer.text == "A" and routed.certificate.score == 1.0
