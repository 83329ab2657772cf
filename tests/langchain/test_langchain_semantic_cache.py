"""SmartChatModel(cache="semantic") with real ChatOpenAI clients and LangChain's OpenAIEmbeddings
against the local fake server: three tenants x two users ask the same questions in three
spellings, each user named in its system message, answers shared within a tenant. Paraphrases
are served from the cache by a certified semantic route; no answer ever crosses tenants or users
(the system message is part of the namespace); the server sees fewer chat calls than requests."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from smart_core import MemoryStore
from smart_core.cache import answer_cache as answer_cache_module
from smart_core.policy import keys as K
from smart_core.testing import FakeLLMServer, Prompt
from smart_langchain import SmartChatModel

REF, MINI, EMBED = "gpt-4o", "gpt-4o-mini", "text-embedding-3-small"
ROUTE = "cache:semantic@0.8"
TENANTS, USERS = ["acme", "globex", "initech"], ["ann", "bob"]
QUESTIONS = ["What is my plan?", "When does my contract renew?"]
SPELLINGS = [str, str.lower, lambda q: q.rstrip("?") + " ?"]


def normal(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower()).strip()


def answer(prompt: Prompt) -> str:
    """Names whoever the system message names (a crossed answer shows); the same answer for
    every spelling of a question (so a paraphrase's hit agrees with the reference)."""
    system = next((m.text for m in prompt.messages if m.role == "system"), "")
    return f"[{system}] answer to: {normal(prompt.last_user_text)}"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REF: answer, MINI: lambda p: "I am not sure."}) as srv:
        yield srv


def trusted_store(n: int = 3000) -> MemoryStore:
    """The semantic route agreed on all of ``n`` probes and the candidate on none: the mix sends
    the route nearly everything (the bound is the policy's business; here, serving is tested)."""
    store = MemoryStore()
    inc = {K.REQUESTS: n, K.PROBES: n, K.routed(REF): n}
    inc |= {K.probes_of(ROUTE): n, K.agreements(ROUTE): n, K.probes_of(MINI): n}
    inc |= {K.calls(REF): n, K.call_cost(REF): n * 0.0035, K.calls(ROUTE): n}
    store.add("t", {**inc, K.call_cost(ROUTE): 0.0})
    return store


def smart(server: FakeLLMServer, embeddings: Embeddings, **settings: Any) -> SmartChatModel:
    def model(name: str) -> ChatOpenAI:
        return ChatOpenAI(
            model=name, base_url=server.openai_base_url, api_key="sk-test", max_retries=0
        )

    return SmartChatModel(
        reference=model(REF),
        candidates=[model(MINI)],
        task="t",
        epsilon=0.1,
        seed=0,
        cache="semantic",
        cache_similarities=(0.8,),
        embeddings=embeddings,
        store=trusted_store(),
        wait_for_probes=True,
        **settings,
    )


def embeddings_of(server: FakeLLMServer) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        model=EMBED,
        base_url=server.openai_base_url,
        api_key="sk-test",
        check_embedding_ctx_length=False,  # send text, not tiktoken ids
    )


def ask(tenant: str, user: str, question: str) -> list[Any]:
    return [SystemMessage(f"You help {user} of {tenant}."), HumanMessage(question)]


def chat_calls(server: FakeLLMServer) -> int:
    return server.calls(REF) + server.calls(MINI)


def test_paraphrases_are_served_from_the_cache_and_no_answer_crosses_tenants_or_users(server):
    llm = smart(server, embeddings_of(server))
    routes: Counter = Counter()
    requests = 0
    for spell in SPELLINGS:
        for tenant in TENANTS:
            for user in USERS:
                for q in QUESTIONS:
                    config = {"metadata": {"smart_tenant": tenant, "smart_user": user}}
                    reply = llm.invoke(ask(tenant, user, spell(q)), config=config)
                    requests += 1
                    assert reply.content == f"[You help {user} of {tenant}.] answer to: {normal(q)}"
                    routes[reply.response_metadata["smart"]["route"]] += 1
    # The first spelling of each (tenant, user, question) is answered by the reference (nothing
    # close is stored in its namespace); most later spellings are semantic hits.
    assert routes[ROUTE] >= 24
    hits = llm.ledger().cache_hits
    assert hits >= 18
    assert chat_calls(server) <= requests - hits < requests
    assert server.calls(EMBED) >= requests  # one embedding per request (and none are shared)


def test_an_async_paraphrase_and_a_streamed_hit(server):
    llm = smart(server, embeddings_of(server))
    config = {"metadata": {"smart_tenant": "acme", "smart_user": "ann"}}
    first = llm.invoke(ask("acme", "ann", "What is my plan?"), config=config)
    assert first.response_metadata["smart"]["route"] == ROUTE  # a miss: the reference answered
    calls = chat_calls(server)

    async def paraphrase() -> Any:
        return await llm.ainvoke(ask("acme", "ann", "what is my plan"), config=config)

    again = asyncio.run(paraphrase())
    assert again.content == first.content and again.usage_metadata["total_tokens"] == 0
    chunks = list(llm.stream(ask("acme", "ann", "What is my plan ?"), config=config))
    assert "".join(c.content for c in chunks) == first.content
    assert chunks[-1].response_metadata["smart"]["route"] == ROUTE
    assert chat_calls(server) == calls  # both from the cache
    other = llm.invoke(ask("acme", "bob", "what is my plan"), config=config)
    assert other.content == "[You help bob of acme.] answer to: what is my plan"


def test_any_langchain_embeddings_and_a_failing_one(server, monkeypatch):
    class Broken(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise RuntimeError("embedding service down")

        def embed_query(self, text: str) -> list[float]:
            raise RuntimeError("embedding service down")

    seen: list[str] = []
    log = answer_cache_module._log  # other tests may reconfigure logging: watch the call itself
    monkeypatch.setattr(log, "warning", lambda msg, *args: seen.append(msg % args))
    llm = smart(server, Broken())
    msgs = ask("acme", "ann", "What is my plan?")
    for _ in range(2):  # looked up exactly: the identical repeat is still an exact hit
        reply = llm.invoke(msgs, config={"metadata": {"smart_tenant": "acme"}})
    assert reply.response_metadata["smart"]["route"] == "cache:exact"
    assert sum("embedder failed" in m for m in seen) == 1  # one warning for the outage
    with pytest.raises(TypeError, match="embeddings must be a LangChain Embeddings"):
        smart(server, object())  # type: ignore[arg-type]
