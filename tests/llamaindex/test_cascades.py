"""Cascades through SmartLLM with a real LlamaIndex OpenAI client against the local fake server:
chat, achat, complete and streams all run the one serving flow; a rejected cascade step's
tokens never reach the user."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from smart_core.testing import FakeLLMServer, force_route
from smart_llamaindex import SMART_KEY, SmartLLM

from .conftest import openai_llm

REF, MINI = "gpt-4o", "gpt-4o-mini"
LABEL_A = "cascade:gpt-4o-mini[label=A]>ref"
ASK = [ChatMessage(role="user", content="Which letter?")]


@pytest.fixture
def scripted() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REF: "B because it is", MINI: "A is my answer"}) as srv:
        yield srv


def _cascading(server: FakeLLMServer) -> SmartLLM:
    """A SmartLLM whose requests all go to the label cascade (the policy's choice of route is
    tested in smart_core; here only how the adapter serves it)."""
    llm = SmartLLM(
        reference=openai_llm(server, REF),
        candidates=[openai_llm(server, MINI)],
        comparator="choice:A,B,C,D",
        cascades="auto",
        epsilon=0.2,
        seed=0,
    )
    force_route(llm._router, LABEL_A)
    return llm


def test_chat_and_achat_keep_an_accepted_step(scripted):
    llm = _cascading(scripted)
    response = llm.chat(ASK)
    record = response.additional_kwargs[SMART_KEY]
    assert response.message.content == "A is my answer"
    assert record["route"] == LABEL_A
    assert record["certificate"]["step"] == "gpt-4o-mini[label=A]"
    assert scripted.calls(REF) == 0
    response = asyncio.run(llm.achat(ASK))
    assert response.message.content == "A is my answer"


def test_a_rejected_step_escalates_in_complete(scripted):
    scripted.models[MINI] = "C is my answer"
    llm = _cascading(scripted)
    response = llm.complete("Which letter?")
    assert response.text == "B because it is"
    assert response.additional_kwargs[SMART_KEY]["certificate"]["step"] == "ref"
    assert scripted.calls(MINI) == 1 and scripted.calls(REF) == 1


def test_streams_never_show_a_rejected_steps_tokens(scripted):
    scripted.models[MINI] = "C is my answer"
    llm = _cascading(scripted)
    deltas = [r.delta or "" for r in llm.stream_chat(ASK)]
    assert "".join(deltas) == "B because it is"

    async def collect() -> list[str]:
        return [r.delta or "" async for r in await llm.astream_chat(ASK)]

    assert "".join(asyncio.run(collect())) == "B because it is"
    scripted.models[MINI] = "A is my answer"
    assert "".join(r.delta or "" for r in llm.stream_chat(ASK)) == "A is my answer"
    assert "".join(asyncio.run(collect())) == "A is my answer"


def test_a_request_reading_scorer_gets_the_messages_provider_neutral(scripted):
    from smart_core.task.cascades import Cascade, CascadeStep

    seen: list[Any] = []

    def verifier(request, answer):
        seen.append(request)
        return 1.0

    llm = SmartLLM(
        reference=openai_llm(scripted, REF),
        candidates=[openai_llm(scripted, MINI)],
        comparator="choice:A,B,C,D",
        cascades=[Cascade([CascadeStep(MINI, verifier)], name="checked")],
        epsilon=0.2,
        seed=0,
    )
    force_route(llm._router, "checked")
    assert llm.chat(ASK).message.content == "A is my answer"
    llm.complete("Pick one")
    assert seen == [
        [{"role": "user", "content": "Which letter?"}],
        [{"role": "user", "content": "Pick one"}],
    ]


GRID = [
    {"steps": [{"model": MINI, "scorer": "logprob", "threshold": [0.99, 0.98, 0.97, 0.95, 0.9]}]}
]


@pytest.mark.parametrize(("asked", "families"), [("union", 0), ("fixed-sequence", 1)])
def test_a_threshold_grid_is_one_family_when_asked(scripted, asked, families):
    llm = SmartLLM(
        reference=openai_llm(scripted, REF),
        candidates=[openai_llm(scripted, MINI)],
        cascades=GRID,
        epsilon=0.05,
        threshold_families=asked,
    )
    groups = llm._router.policy().families.groups
    assert len(groups) == families
    assert all(len(g) == 5 for g in groups)
