"""SmartLLM(cache="semantic") with real LlamaIndex OpenAI clients and LlamaIndex's
OpenAIEmbedding against the local fake server: three tenants x two users ask the same questions
in three spellings, each user named in its system message, answers shared within a tenant;
paraphrases come from the cache, no answer crosses tenants or users, and the server sees fewer
chat calls than requests; a completion's prompt is compared too."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.embeddings.openai import OpenAIEmbedding

from smart_core import MemoryStore
from smart_core.policy import keys as K
from smart_core.testing import FakeLLMServer, Prompt
from smart_llamaindex import SmartLLM

from .conftest import MINI, REFERENCE, openai_llm

EMBED, ROUTE = "text-embedding-3-small", "cache:semantic@0.8"
TENANTS, USERS = ["acme", "globex", "initech"], ["ann", "bob"]
QUESTIONS = ["What is my plan?", "When does my contract renew?"]
SPELLINGS = [str, str.lower, lambda q: q.rstrip("?") + " ?"]


def normal(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower()).strip()


def answer(prompt: Prompt) -> str:
    system = next((m.text for m in prompt.messages if m.role == "system"), "")
    return f"[{system}] answer to: {normal(prompt.last_user_text)}"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REFERENCE: answer, MINI: lambda p: "I am not sure."}) as srv:
        yield srv


def trusted_store(n: int = 3000) -> MemoryStore:
    """The semantic route agreed on all of ``n`` probes, the candidate on none."""
    store = MemoryStore()
    inc = {K.REQUESTS: n, K.PROBES: n, K.routed(REFERENCE): n}
    inc |= {K.probes_of(ROUTE): n, K.agreements(ROUTE): n, K.probes_of(MINI): n}
    inc |= {K.calls(REFERENCE): n, K.call_cost(REFERENCE): n * 0.0035, K.calls(ROUTE): n}
    store.add("t", {**inc, K.call_cost(ROUTE): 0.0})
    return store


def smart(server: FakeLLMServer, **settings: Any) -> SmartLLM:
    embed = OpenAIEmbedding(model_name=EMBED, api_base=server.openai_base_url, api_key="sk-test")
    return SmartLLM(
        reference=openai_llm(server, REFERENCE),
        candidates=[openai_llm(server, MINI)],
        task="t",
        epsilon=0.1,
        seed=0,
        cache="semantic",
        cache_similarities=(0.8,),
        embed_model=embed,
        store=trusted_store(),
        wait_for_probes=True,
        **settings,
    )


def ask(tenant: str, user: str, question: str) -> list[ChatMessage]:
    return [
        ChatMessage(role=MessageRole.SYSTEM, content=f"You help {user} of {tenant}."),
        ChatMessage(role=MessageRole.USER, content=question),
    ]


def chat_calls(server: FakeLLMServer) -> int:
    return server.calls(REFERENCE) + server.calls(MINI)


def test_paraphrases_come_from_the_cache_and_no_answer_crosses(server):
    llm = smart(server)
    routes: Counter = Counter()
    requests = 0
    for spell in SPELLINGS:
        for tenant in TENANTS:
            for user in USERS:
                for q in QUESTIONS:
                    reply = llm.chat(ask(tenant, user, spell(q)), smart_tenant=tenant)
                    requests += 1
                    expected = f"[You help {user} of {tenant}.] answer to: {normal(q)}"
                    assert reply.message.content == expected
                    routes[reply.additional_kwargs["smart"]["route"]] += 1
    assert routes[ROUTE] >= 24
    hits = llm._router.ledger("t").cache_hits
    assert hits >= 18
    assert chat_calls(server) <= requests - hits < requests
    assert server.calls(EMBED) >= requests


def test_async_chat_and_a_completion_prompt(server):
    llm = smart(server)
    first = llm.chat(ask("acme", "ann", "What is my plan?"), smart_tenant="acme")
    calls = chat_calls(server)

    async def paraphrase() -> Any:
        return await llm.achat(ask("acme", "ann", "what is my plan"), smart_tenant="acme")

    again = asyncio.run(paraphrase())
    assert again.message.content == first.message.content
    assert again.additional_kwargs["smart"]["route"] == ROUTE
    assert chat_calls(server) == calls
    first_completion = llm.complete("Summarise the plan of acme.", smart_tenant="acme")
    calls = chat_calls(server)
    hit = llm.complete("summarise the plan of acme", smart_tenant="acme")
    assert hit.additional_kwargs["smart"]["route"] == ROUTE and hit.text == first_completion.text
    assert chat_calls(server) == calls  # the prompt's paraphrase came from the cache
    with pytest.raises(TypeError, match="embed_model must be a LlamaIndex"):
        SmartLLM(
            reference=openai_llm(server, REFERENCE),
            candidates=[openai_llm(server, MINI)],
            epsilon=0.1,
            cache="semantic",
            embed_model=object(),
        )
