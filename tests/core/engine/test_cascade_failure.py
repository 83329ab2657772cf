"""A cascade step that fails while serving: the request falls back to the reference (the
failure counted as a failure, never a disagreement), and what the cascade had already paid
for its earlier steps is recorded, as money spent and under the cascade's name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from smart_core import SmartConfig, SmartRouter
from smart_core.policy import keys as K
from smart_core.providers.sdk import make_provider
from smart_core.task.cascades import Cascade, CascadeStep
from smart_core.testing import Behaviour, FakeLLMServer, Fault

REF, MINI, NANO = "openai:gpt-4o", "openai:gpt-4o-mini", "openai:gpt-4.1-nano"
ROUTE = "two-steps"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    models = {
        "gpt-4o": "B",
        "gpt-4o-mini": "C",  # rejected by label:A, so the chain goes on
        "gpt-4.1-nano": Behaviour("A", faults=[Fault("server_error", every=1)]),
    }
    with FakeLLMServer(models) as srv:
        yield srv


def _router(server: FakeLLMServer) -> SmartRouter:
    cascade = Cascade([CascadeStep(MINI, "label:A"), CascadeStep(NANO, "label:A")], name=ROUTE)
    config = SmartConfig(
        task="t", epsilon=0.1, reference=REF, candidates=[MINI, NANO], cascades=[cascade],
        comparator="choice:A,B,C", audit_rate=0.0, cooldown_after=100,
    )  # fmt: skip
    endpoints = {
        m: make_provider(m, base_url=server.openai_base_url, max_retries=0)
        for m in (REF, MINI, NANO)
    }
    router = SmartRouter(config, endpoints, seed=0)
    begin = router.abegin

    async def forced(*a: Any, **k: Any) -> Any:
        ticket = await begin(*a, **k)
        decision = replace(ticket.decision, route=ROUTE, probe=False, probe_models=())
        return replace(ticket, decision=decision, route=ROUTE)

    router.abegin = forced
    return router


def test_a_failing_step_falls_back_and_its_earlier_calls_are_paid_for(server):
    router = _router(server)
    routed = router.run("Which letter?")
    assert routed.answer.text == "B" and routed.fallback and routed.route == REF
    assert server.calls("gpt-4o-mini") == 1 and server.calls("gpt-4.1-nano") == 1
    counters = router.store.read("t")
    mini_cost = counters[K.call_cost(MINI)]
    ref_cost = counters[K.call_cost(REF)]
    assert mini_cost > 0 and ref_cost > 0
    assert counters[K.calls(MINI)] == 1
    assert counters[K.SPENT] == pytest.approx(mini_cost + ref_cost)  # the failed step's call too
    assert counters[K.calls(ROUTE)] == 1 and counters[K.call_cost(ROUTE)] == pytest.approx(
        mini_cost
    )
    assert counters[K.failures(ROUTE)] == 1 and counters[K.fallbacks(ROUTE)] == 1
    assert router.ledger("t").spent == pytest.approx(mini_cost + ref_cost)


def test_a_failing_first_step_has_nothing_earlier_to_record(server):
    server.models["gpt-4o-mini"] = Behaviour("A", faults=[Fault("server_error", every=1)])
    router = _router(server)
    routed = router.run("Which letter?")
    assert routed.answer.text == "B" and routed.fallback
    counters = router.store.read("t")
    assert K.calls(ROUTE) not in counters or counters[K.calls(ROUTE)] == 0
    assert counters[K.SPENT] == pytest.approx(counters[K.call_cost(REF)])
