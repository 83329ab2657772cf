"""A cascade judged by the cheap model's confidence, ``gpt-4o-mini[logprob>=0.9]>ref``, through
SmartChatModel with a real ChatOpenAI on the fake server: the adapter asks the step's model for
token logprobs (and only it), reads them into the Answer, and the step is kept when the model
was sure, escalated when not; on a probe the cascade is judged on the same logprobs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_openai import ChatOpenAI

from smart_core.policy import keys as K
from smart_core.task.cascades import Cascade, CascadeStep
from smart_core.testing import FakeLLMServer, Prompt, Reply, force_route
from smart_langchain import SmartChatModel

REF, MINI = "gpt-4o", "gpt-4o-mini"
ROUTE = "cascade:gpt-4o-mini[logprob>=0.9]>ref"


def mini(prompt: Prompt) -> Reply:
    """Sure of its answer to easy questions, unsure otherwise."""
    sure = "easy" in prompt.last_user_text
    return Reply("A is my answer", confidence=0.97 if sure else 0.4)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REF: "B because it is", MINI: mini}) as srv:
        yield srv


def _model(server: FakeLLMServer, name: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=name, base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=5
    )


def _llm(server: FakeLLMServer, *, route: str = ROUTE, probe: bool = False) -> SmartChatModel:
    """Every request goes to ``route`` (or, with ``probe``, to the reference with the cascade
    probed beside it); which route the policy picks is tested in smart_core."""
    llm = SmartChatModel(
        reference=_model(server, REF),
        candidates=[_model(server, MINI)],
        comparator="choice:A,B,C,D",
        cascades=[Cascade([CascadeStep(MINI, "logprob", threshold=0.9)])],
        epsilon=0.2,
        seed=0,
        wait_for_probes=True,
    )
    force_route(llm._router, route, probe=probe)
    return llm


def _asked_logprobs(server: FakeLLMServer, model: str) -> list[bool]:
    return [bool(r.body.get("logprobs")) for r in server.requests if r.model == model]


def test_a_sure_step_is_kept_with_its_confidence_as_the_score(server):
    message = _llm(server).invoke("an easy one")
    smart = message.response_metadata["smart"]
    assert message.content == "A is my answer"
    assert smart["route"] == ROUTE and smart["step"] == "gpt-4o-mini[logprob>=0.9]"
    assert smart["score"] == pytest.approx(0.97)
    assert _asked_logprobs(server, MINI) == [True] and server.calls(REF) == 0


def test_an_unsure_step_escalates_and_the_reference_is_not_asked_for_logprobs(server):
    message = _llm(server).invoke("a hard one")
    assert message.content == "B because it is"
    assert message.response_metadata["smart"]["step"] == "ref"
    assert _asked_logprobs(server, MINI) == [True]
    assert _asked_logprobs(server, REF) == [False]


def test_streams_and_async_calls_read_the_logprobs_too(server):
    llm = _llm(server)
    chunks = list(llm.stream("an easy one"))
    assert "".join(c.content for c in chunks) == "A is my answer"
    assert chunks[-1].response_metadata["smart"]["score"] == pytest.approx(0.97)
    chunks = list(llm.stream("a hard one"))
    assert "".join(c.content for c in chunks) == "B because it is"
    message = asyncio.run(llm.ainvoke("an easy one"))
    assert message.response_metadata["smart"]["step"] == "gpt-4o-mini[logprob>=0.9]"

    async def collect() -> str:
        return "".join([c.content async for c in llm.astream("a hard one")])

    assert asyncio.run(collect()) == "B because it is"
    assert all(_asked_logprobs(server, MINI))


def test_a_probe_judges_the_cascade_on_the_same_logprobs(server):
    llm = _llm(server, probe=True)
    for text in ("an easy one", "a hard one", "an easy two"):
        message = llm.invoke(text)
        assert message.content == "B because it is"  # a probe answers with the reference
    llm.flush()
    counters = llm.router.store.read(llm.config.task)
    # Sure twice (kept "A", differs from the reference's "B"), unsure once (escalated: agrees).
    assert counters[K.probes_of(ROUTE)] == 3
    assert counters[K.agreements(ROUTE)] == 1
    assert _asked_logprobs(server, MINI) == [True] * 3


def test_a_request_reading_scorer_gets_the_messages_provider_neutral(server):
    from langchain_core.messages import HumanMessage, SystemMessage

    seen: list[Any] = []

    def verifier(request, answer):
        seen.append(request)
        return 1.0 if "easy" in request[-1]["content"] else 0.0

    llm = SmartChatModel(
        reference=_model(server, REF),
        candidates=[_model(server, MINI)],
        comparator="choice:A,B,C,D",
        cascades=[Cascade([CascadeStep(MINI, verifier)], name="checked")],
        epsilon=0.2,
        seed=0,
    )
    force_route(llm._router, "checked")
    sure = llm.invoke([SystemMessage("Be brief."), HumanMessage("an easy one")])
    assert sure.content == "A is my answer"
    unsure = "".join(c.content for c in llm.stream("a hard one"))
    assert unsure == "B because it is"
    assert seen == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "an easy one"}],
        [{"role": "user", "content": "a hard one"}],
    ]
