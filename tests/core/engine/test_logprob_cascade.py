"""The logprob cascade end to end through SmartRouter and the official openai client
(``make_provider(..., logprobs=True)``) against the fake server: the step's confidence comes
from the token logprobs the server reports, is read into ``Answer.logprobs``, and decides the
step; the reference is never asked for logprobs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from smart_core import Answer, SmartConfig, SmartRouter
from smart_core.policy import keys as K
from smart_core.providers.sdk import make_provider
from smart_core.task.cascades import Cascade, CascadeStep, logprob_models
from smart_core.task.comparators import parse_comparator
from smart_core.task.scorers import LogprobScorer
from smart_core.testing import FakeLLMServer, Prompt, Reply

REF, MINI = "openai:gpt-4o", "openai:gpt-4o-mini"
ROUTE = "cascade:openai:gpt-4o-mini[logprob>=0.9]>ref"


def mini(prompt: Prompt) -> Reply:
    return Reply("A", confidence=0.95 if "easy" in prompt.last_user_text else 0.5)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({"gpt-4o": "B", "gpt-4o-mini": mini}) as srv:
        yield srv


def _router(server: FakeLLMServer, *, probe: bool = False) -> SmartRouter:
    cascade = Cascade([CascadeStep(MINI, "logprob", threshold=0.9)])
    config = SmartConfig(
        task="t", epsilon=0.1, reference=REF, candidates=[MINI], cascades=[cascade],
        comparator="choice:A,B,C,D", audit_rate=0.0,
    )  # fmt: skip
    wants = logprob_models(config.cascade_list())
    assert wants == {MINI}
    endpoints = {
        m: make_provider(m, base_url=server.openai_base_url, logprobs=m in wants)
        for m in (REF, MINI)
    }
    router = SmartRouter(config, endpoints, seed=0)
    begin = router.abegin

    async def forced(*a: Any, **k: Any) -> Any:
        ticket = await begin(*a, **k)
        route = REF if probe else ROUTE
        decision = replace(
            ticket.decision, route=route, probe=probe, probe_models=(ROUTE,) if probe else ()
        )
        return replace(ticket, decision=decision, route=route)

    router.abegin = forced
    return router


def test_a_sure_step_is_kept_and_an_unsure_one_escalates(server):
    server.reset()
    router = _router(server)
    sure = router.run([{"role": "user", "content": "an easy one"}])
    assert sure.answer.text == "A" and sure.certificate.step == "openai:gpt-4o-mini[logprob>=0.9]"
    assert sure.answer.logprobs is not None
    assert sure.certificate.score == pytest.approx(0.95)
    unsure = router.run([{"role": "user", "content": "a hard one"}])
    assert unsure.answer.text == "B" and unsure.certificate.step == "ref"
    asked = {(r.model, bool(r.body.get("logprobs"))) for r in server.requests}
    assert asked == {("gpt-4o-mini", True), ("gpt-4o", False)}


def test_probes_judge_the_cascade_on_the_reported_confidence(server):
    router = _router(server, probe=True)
    for text in ("easy 1", "hard 2", "hard 3", "easy 4"):
        assert router.run(text).answer.text == "B"
    counters = router.store.read("t")
    assert counters[K.probes_of(ROUTE)] == 4
    assert counters[K.agreements(ROUTE)] == 2  # the two unsure answers escalated


def test_answer_logprobs_come_before_any_other_form():
    s = LogprobScorer()
    choice = parse_comparator("choice:A,B")
    both = Answer("A", value={"logprobs": [-5.0]}, logprobs=(-0.01, -0.01))
    assert s(both, {}, choice) == pytest.approx(0.98, abs=1e-3)
    assert s(Answer("A", logprobs=()), {}, choice) == 0.0
