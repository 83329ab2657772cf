"""A cascade judged by the cheap model's confidence, ``gpt-4o-mini[logprob>=0.9]>ref``, through
SmartLLM with a real LlamaIndex OpenAI client on the fake server: the adapter asks the step's
model for token logprobs (and only it), reads them from the OpenAI objects behind the response,
whole and streamed, and the step is kept when the model was sure, escalated when not; on a
probe the cascade is judged on the same logprobs. Without them the step could only escalate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from smart_core.policy import keys as K
from smart_core.task.cascades import Cascade, CascadeStep
from smart_core.testing import FakeLLMServer, Prompt, Reply, force_route
from smart_llamaindex import SMART_KEY, SmartLLM

from .conftest import anthropic_llm, openai_llm

REF, MINI, HAIKU = "gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-latest"
ROUTE = "cascade:gpt-4o-mini[logprob>=0.9]>ref"


def mini(prompt: Prompt) -> Reply:
    """Sure of its answer to easy questions, unsure otherwise."""
    sure = "easy" in prompt.last_user_text
    return Reply("A is my answer", confidence=0.97 if sure else 0.4)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REF: "B because it is", MINI: mini, HAIKU: "A is mine"}) as srv:
        yield srv


def _llm(server: FakeLLMServer, *, route: str = ROUTE, probe: bool = False) -> SmartLLM:
    """Every request goes to ``route`` (or, with ``probe``, to the reference with the cascade
    probed beside it); which route the policy picks is tested in smart_core."""
    llm = SmartLLM(
        reference=openai_llm(server, REF),
        candidates=[openai_llm(server, MINI)],
        comparator="choice:A,B,C,D",
        cascades=[Cascade([CascadeStep(MINI, "logprob", threshold=0.9)])],
        epsilon=0.2,
        seed=0,
        wait_for_probes=True,
    )
    force_route(llm.router, route, probe=probe)
    return llm


def _ask(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def _step(response: Any) -> str:
    return response.additional_kwargs[SMART_KEY]["certificate"]["step"]


def _asked_logprobs(server: FakeLLMServer, model: str) -> list[bool]:
    return [bool(r.body.get("logprobs")) for r in server.requests if r.model == model]


def test_a_sure_step_is_kept_with_its_confidence_as_the_score(server):
    response = _llm(server).chat(_ask("an easy one"))
    smart = response.additional_kwargs[SMART_KEY]
    assert response.message.content == "A is my answer"
    assert smart["route"] == ROUTE
    assert _step(response) == "gpt-4o-mini[logprob>=0.9]"
    assert smart["certificate"]["score"] == pytest.approx(0.97)
    assert _asked_logprobs(server, MINI) == [True] and server.calls(REF) == 0


def test_an_unsure_step_escalates_and_the_reference_is_not_asked_for_logprobs(server):
    response = _llm(server).complete("a hard one")
    assert response.text == "B because it is"
    assert _step(response) == "ref"
    assert _asked_logprobs(server, MINI) == [True]
    assert _asked_logprobs(server, REF) == [False]


def test_streams_and_async_calls_read_the_logprobs_too(server):
    llm = _llm(server)
    chunks = list(llm.stream_chat(_ask("an easy one")))
    assert "".join(c.delta or "" for c in chunks) == "A is my answer"
    assert chunks[-1].additional_kwargs[SMART_KEY]["certificate"]["score"] == pytest.approx(0.97)
    chunks = list(llm.stream_complete("a hard one"))
    assert "".join(c.delta or "" for c in chunks) == "B because it is"

    async def both() -> tuple[Any, str, dict]:
        # One event loop for both: LlamaIndex's OpenAI keeps its async client per loop.
        whole = await llm.achat(_ask("an easy one"))
        chunks = [c async for c in await llm.astream_chat(_ask("an easy two"))]
        record = chunks[-1].additional_kwargs[SMART_KEY]
        return whole, "".join(c.delta or "" for c in chunks), record["certificate"]

    whole, text, certificate = asyncio.run(both())
    assert _step(whole) == "gpt-4o-mini[logprob>=0.9]"
    assert text == "A is my answer" and certificate["score"] == pytest.approx(0.97)
    assert _asked_logprobs(server, MINI) == [True] * 4


def test_a_probe_judges_the_cascade_on_the_same_logprobs(server):
    llm = _llm(server, probe=True)
    for text in ("an easy one", "a hard one", "an easy two"):
        assert llm.complete(text).text == "B because it is"  # a probe answers with the reference
    llm.flush()
    counters = llm.router.store.read(llm.router.config.task)
    # Sure twice (kept "A", differs from the reference's "B"), unsure once (escalated: agrees).
    assert counters[K.probes_of(ROUTE)] == 3
    assert counters[K.agreements(ROUTE)] == 1
    assert _asked_logprobs(server, MINI) == [True] * 3


def test_a_model_without_logprobs_is_never_asked_and_its_step_escalates(server):
    route = "cascade:claude-3-5-haiku-latest[logprob>=0.9]>ref"
    llm = SmartLLM(
        reference=openai_llm(server, REF),
        candidates=[anthropic_llm(server, HAIKU)],
        comparator="choice:A,B,C,D",
        cascades=[Cascade([CascadeStep(HAIKU, "logprob", threshold=0.9)])],
        epsilon=0.2,
        seed=0,
    )
    force_route(llm.router, route)
    response = llm.chat(_ask("an easy one"))
    assert response.message.content == "B because it is"
    assert _step(response) == "ref"
    assert server.calls(HAIKU) == 1
