"""Cascades through SmartChatModel with a real ChatOpenAI against the local fake server: one
serving flow for invoke, ainvoke, batch and streams. A cascade step's answer is decided on
before any of it reaches the user: a rejected step's tokens never do."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_openai import ChatOpenAI

from smart_core.testing import FakeLLMServer, force_route
from smart_langchain import SmartChatModel

REF, MINI = "gpt-4o", "gpt-4o-mini"
LABEL_A = "cascade:gpt-4o-mini[label=A]>ref"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REF: "B because it is", MINI: "A is my answer"}) as srv:
        yield srv


def _model(server: FakeLLMServer, name: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=name,
        base_url=server.openai_base_url,
        api_key="sk-test",
        max_retries=0,
        timeout=5.0,
        stream_usage=True,
    )


def _cascading(server: FakeLLMServer, route: str = LABEL_A) -> SmartChatModel:
    """A SmartChatModel whose requests all go to ``route`` (which route the policy picks is
    tested in smart_core; here only how the adapter serves it)."""
    llm = SmartChatModel(
        reference=_model(server, REF),
        candidates=[_model(server, MINI)],
        comparator="choice:A,B,C,D",
        cascades="auto",
        epsilon=0.2,
        seed=0,
    )
    force_route(llm._router, route)
    return llm


def test_invoke_keeps_an_accepted_step_and_names_it_in_the_certificate(server):
    llm = _cascading(server)
    message = llm.invoke("Which letter?")
    smart = message.response_metadata["smart"]
    assert message.content == "A is my answer"
    assert smart["route"] == LABEL_A
    assert smart["step"] == "gpt-4o-mini[label=A]"
    assert smart["score"] == 1.0
    assert server.calls(MINI) == 1 and server.calls(REF) == 0


def test_a_rejected_step_escalates_and_the_request_pays_for_both(server):
    server.models[MINI] = "C is my answer"
    llm = _cascading(server)
    message = llm.invoke("Which letter?")
    assert message.content == "B because it is"
    assert message.response_metadata["smart"]["step"] == "ref"
    assert server.calls(MINI) == 1 and server.calls(REF) == 1
    spent = llm.ledger().spent
    assert spent > 0 and message.response_metadata["smart"]["cost"] == pytest.approx(spent)


def test_ainvoke_and_batch_serve_the_cascade_alike(server):
    llm = _cascading(server)
    message = asyncio.run(llm.ainvoke("Which letter?"))
    assert message.content == "A is my answer"
    out = llm.batch(["one", "two", "three"])
    assert [m.content for m in out] == ["A is my answer"] * 3
    assert {m.response_metadata["smart"]["route"] for m in out} == {LABEL_A}


def test_a_stream_never_shows_a_rejected_steps_tokens(server):
    server.models[MINI] = "C is my answer"
    llm = _cascading(server)
    chunks = list(llm.stream("Which letter?"))
    text = "".join(c.content for c in chunks)
    assert text == "B because it is" and "C" not in text
    assert chunks[-1].response_metadata["smart"]["step"] == "ref"


def test_a_stream_relays_an_accepted_step_once_the_cascade_decided(server):
    llm = _cascading(server)
    chunks = list(llm.stream("Which letter?"))
    assert "".join(c.content for c in chunks) == "A is my answer"
    assert chunks[-1].response_metadata["smart"]["route"] == LABEL_A


def test_an_async_stream_never_shows_a_rejected_steps_tokens(server):
    server.models[MINI] = "C is my answer"
    llm = _cascading(server)

    async def collect() -> list[Any]:
        return [c async for c in llm.astream("Which letter?")]

    chunks = asyncio.run(collect())
    assert "".join(c.content for c in chunks) == "B because it is"
    server.models[MINI] = "A is my answer"
    chunks = asyncio.run(collect())
    assert "".join(c.content for c in chunks) == "A is my answer"


GRID = [
    {"steps": [{"model": MINI, "scorer": "logprob", "threshold": [0.99, 0.98, 0.97, 0.95, 0.9]}]}
]


@pytest.mark.parametrize(("asked", "families"), [("union", 0), ("fixed-sequence", 1)])
def test_a_threshold_grid_is_one_family_when_asked(server, asked, families):
    llm = SmartChatModel(
        reference=_model(server, REF),
        candidates=[_model(server, MINI)],
        cascades=GRID,
        epsilon=0.05,
        threshold_families=asked,
    )
    groups = llm._router.policy().families.groups
    assert len(groups) == families
    assert all(len(g) == 5 for g in groups)
