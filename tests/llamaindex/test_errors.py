"""Errors: a routed candidate that fails (429, 500, timeout) falls back to the reference, and the
failure is recorded but is not a disagreement; a failing reference raises the provider's own
exception; streams fall back when the failure comes before the first chunk."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from smart_core.testing import Behaviour, FakeLLMServer, Fault
from smart_llamaindex import SMART_KEY, SmartLLM

from .conftest import HAIKU, MINI, REFERENCE, anthropic_llm, openai_llm, warm_store
from .test_llm import METHODS, call

pytestmark = pytest.mark.filterwarnings("ignore:The model:DeprecationWarning")

NAMES = [REFERENCE, MINI, HAIKU]


@pytest.fixture
def faulty() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def build(srv: FakeLLMServer, warm: bool, timeout: float = 10, **kwargs) -> SmartLLM:
    if warm:
        kwargs.update(epsilon=0.2, audit_rate=0, store=warm_store(NAMES, 0.2))
    kwargs.setdefault("epsilon", 0.05)
    return SmartLLM(
        reference=openai_llm(srv, REFERENCE, timeout=timeout),
        candidates=[
            openai_llm(srv, MINI, timeout=timeout),
            anthropic_llm(srv, HAIKU, timeout=timeout),
        ],
        seed=0,
        wait_for_probes=True,
        **kwargs,
    )


def failing(kind: str) -> Behaviour:
    return Behaviour(faults=[Fault(kind, hang=5 if kind == "timeout" else None)])


@pytest.mark.parametrize("method", METHODS)
async def test_failing_candidate_falls_back_to_the_reference(faulty, method):
    llm = build(faulty, warm=True)
    faulty.models = {MINI: failing("rate_limit"), HAIKU: failing("rate_limit")}
    before = llm.ledger()
    infos = []
    for _ in range(4):
        final, _ = await call(llm, method)
        infos.append(final.additional_kwargs[SMART_KEY])
    assert all(i["route"] == REFERENCE for i in infos)  # every user got the reference's answer
    assert any(i["fallback"] for i in infos)
    assert all("certificate" in i for i in infos)
    after = llm.ledger()
    fallbacks = sum(after.routes[n].fallbacks - before.routes[n].fallbacks for n in NAMES[1:])
    assert fallbacks == sum(i["fallback"] for i in infos)
    for n in NAMES[1:]:  # a rate limit is not a disagreement
        assert after.routes[n].agreements == after.routes[n].probes


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rate_limit", "server_error", "timeout"])
async def test_fault_kinds_fall_back(faulty, kind):
    llm = build(faulty, warm=True, timeout=0.5)
    faulty.models = {MINI: failing(kind), HAIKU: failing(kind)}
    routes = []
    for _ in range(3):
        r = await llm.achat([_msg()])
        routes.append(r.additional_kwargs[SMART_KEY])
        assert r.message.content
    assert any(i["fallback"] for i in routes)
    ledger = llm.ledger()
    assert sum(ledger.routes[n].failures for n in NAMES[1:]) >= 1


def _msg():
    from llama_index.core.base.llms.types import ChatMessage

    return ChatMessage(role="user", content="hello")


@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_complete"])
async def test_failing_reference_raises_the_providers_error(faulty, method):
    llm = build(faulty, warm=False)  # a fresh SmartLLM probes: the reference answers
    faulty.models = {REFERENCE: failing("rate_limit")}
    with pytest.raises(openai.RateLimitError):
        await call(llm, method)
    await llm.aflush()
    ledger = llm.ledger()
    assert ledger.spent == 0 and all(r.probes == 0 for r in ledger.routes.values())


async def test_failing_anthropic_reference_raises_anthropics_error(faulty):
    llm = SmartLLM(
        reference=anthropic_llm(faulty, "claude-3-7-sonnet-latest"),
        candidates=[openai_llm(faulty, MINI)],
        epsilon=0.05,
    )
    faulty.models = {"claude-3-7-sonnet-latest": failing("server_error")}
    with pytest.raises(anthropic.InternalServerError):
        await llm.achat([_msg()])
    with pytest.raises(anthropic.InternalServerError):
        llm.complete("hello")


async def test_rate_limited_probe_candidate_is_a_failure_not_a_disagreement(faulty):
    llm = build(faulty, warm=False)
    faulty.models = {MINI: failing("rate_limit")}
    for _ in range(3):
        llm.chat([_msg()])
        await llm.achat([_msg()])
    await llm.aflush()
    ledger = llm.ledger()
    assert ledger.routes[MINI].probes == 0 and ledger.routes[MINI].failures == 6
    assert ledger.routes[HAIKU].probes == ledger.routes[HAIKU].agreements == 6


STREAMS = [m for m in METHODS if "stream" in m]


@pytest.mark.parametrize("method", STREAMS)
async def test_stream_cut_before_any_content_falls_back(faulty, method):
    """The chunks before the first content are held back, so a failure there still falls back."""
    llm = build(faulty, warm=True)
    faulty.models = {n: Behaviour("", faults=[Fault("truncate")]) for n in NAMES[1:]}
    infos = []
    for _ in range(3):
        final, items = await call(llm, method)
        infos.append(final.additional_kwargs[SMART_KEY])
        assert "".join(r.delta or "" for r in items)  # the reference's whole answer
    assert all(i["route"] == REFERENCE for i in infos) and any(i["fallback"] for i in infos)


@pytest.mark.parametrize("method", STREAMS)
async def test_stream_cut_after_content_reaches_the_user(faulty, method):
    """Once the user has seen content, a failure is theirs, as without SmartLLM."""
    llm = build(faulty, warm=True)
    faulty.models = {n: Behaviour("a b c d e f g h", faults=[Fault("truncate")]) for n in NAMES[1:]}
    raised = 0
    for _ in range(3):
        try:
            await call(llm, method)
        except Exception:
            raised += 1
    assert raised >= 1
    candidates = [r for r in llm.ledger().routes.values() if r.name != REFERENCE]
    assert all(r.fallbacks == 0 for r in candidates)
    # Each cut is still counted against the candidate that broke, never as a disagreement.
    assert sum(r.failures for r in candidates) == raised
    assert all(r.agreements == r.probes for r in candidates)
