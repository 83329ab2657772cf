"""SmartLLM(cache="exact") with real LlamaIndex OpenAI clients against the local fake server:
three tenants x two users asking the same questions, each user named in its system message; no
answer crosses tenants or users, repeats come from the cache, the server sees fewer calls than
requests; completions, streaming, async and the per-request opt-out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from smart_core.testing import FakeLLMServer, Prompt
from smart_llamaindex import SmartLLM

from .conftest import MINI, REFERENCE, openai_llm

TENANTS, USERS = ["acme", "globex", "initech"], ["ann", "bob"]
QUESTIONS = ["What is my plan?", "When does my contract renew?"]


def answer(prompt: Prompt) -> str:
    system = next((m.text for m in prompt.messages if m.role == "system"), "")
    return f"[{system}] answer to: {prompt.last_user_text}"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REFERENCE: answer, MINI: answer}) as srv:
        yield srv


def smart(server: FakeLLMServer, **settings: Any) -> SmartLLM:
    params: dict[str, Any] = {"epsilon": 0.2, "seed": 0, "cache": "exact"}
    params.update(settings)
    return SmartLLM(
        reference=openai_llm(server, REFERENCE), candidates=[openai_llm(server, MINI)], **params
    )


def ask(tenant: str, user: str, question: str) -> list[ChatMessage]:
    return [
        ChatMessage(role=MessageRole.SYSTEM, content=f"You help {user} of {tenant}."),
        ChatMessage(role=MessageRole.USER, content=question),
    ]


def route(response: Any) -> str:
    return response.additional_kwargs["smart"]["route"]


def test_three_tenants_two_users_no_answer_crosses_and_repeats_come_from_the_cache(server):
    llm = smart(server, cache_answers="per_user", expected_requests=12, wait_for_probes=True)
    first: dict[tuple[str, str, str], str] = {}
    requests = 0
    for round_ in range(2):
        for tenant in TENANTS:
            for user in USERS:
                for q in QUESTIONS:
                    reply = llm.chat(ask(tenant, user, q), smart_tenant=tenant, smart_user=user)
                    requests += 1
                    assert reply.message.content == f"[You help {user} of {tenant}.] answer to: {q}"
                    if round_ == 0:
                        first[(tenant, user, q)] = route(reply)
                    elif first[(tenant, user, q)] == REFERENCE:
                        assert route(reply) == "cache:exact"
    assert sum(r == REFERENCE for r in first.values()) >= 10
    assert server.calls() < requests
    assert llm.ledger().cache_hits >= 10


def test_other_tenants_and_users_are_not_served_each_others_entries(server):
    llm = smart(server, cache_answers="per_user", wait_for_probes=True)
    msgs = [ChatMessage(role=MessageRole.USER, content="How do I reset it?")]
    assert route(llm.chat(msgs, smart_tenant="acme", smart_user="ann")) == REFERENCE
    assert route(llm.chat(msgs, smart_tenant="acme", smart_user="ann")) == "cache:exact"
    assert route(llm.chat(msgs, smart_tenant="acme", smart_user="bob")) != "cache:exact"
    assert route(llm.chat(msgs, smart_tenant="globex", smart_user="ann")) != "cache:exact"
    assert route(llm.chat(msgs, smart_tenant="acme")) != "cache:exact"  # no user: no cache
    opted_out = llm.chat(msgs, smart_tenant="acme", smart_user="ann", smart_cache=False)
    assert route(opted_out) != "cache:exact"
    with pytest.raises(ValueError, match="smart_user must be a string"):
        llm.chat(msgs, smart_user=3)


def test_completions_streams_and_async_hits(server):
    llm = smart(server, wait_for_probes=True)
    first = llm.complete("Summarise my open tickets for me")
    assert route(first) == REFERENCE
    again = llm.complete("Summarise my open tickets for me")
    assert route(again) == "cache:exact" and again.text == first.text
    calls = server.calls(REFERENCE)
    chunks = list(llm.stream_complete("Summarise my open tickets for me"))
    assert len(chunks) > 3 and chunks[-1].text == first.text
    assert "".join(c.delta for c in chunks) == first.text
    assert route(chunks[-1]) == "cache:exact"
    msgs = ask("acme", "ann", "Where is my invoice?")

    async def main() -> list[Any]:
        a = await llm.achat(msgs)
        b = await llm.achat(msgs)
        stream = await llm.astream_chat(msgs)
        c = [chunk async for chunk in stream]
        await llm.aflush()
        return [a, b, c]

    a, b, c = asyncio.run(main())
    assert route(a) == REFERENCE and route(b) == "cache:exact"
    assert c[-1].message.content == a.message.content and route(c[-1]) == "cache:exact"
    assert server.calls(REFERENCE) == calls + 1
