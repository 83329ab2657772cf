"""SmartChatModel(cache="exact") with real ChatOpenAI clients against the local fake server:
three tenants x two users asking the same questions, each user named in its system message; no
answer crosses tenants or users, repeats come from the cache, the server sees fewer calls than
requests; streaming, async, the per-request opt-out, and no key in the store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from smart_core.testing import FakeLLMServer, Prompt
from smart_langchain import SmartChatModel

REF, MINI = "gpt-4o", "gpt-4o-mini"
TENANTS, USERS = ["acme", "globex", "initech"], ["ann", "bob"]
QUESTIONS = ["What is my plan?", "When does my contract renew?"]
KEY = "sk-test-never-stored-4d1f"


def answer(prompt: Prompt) -> str:
    """The answer names whoever the system message names, so a crossed answer shows."""
    system = next((m.text for m in prompt.messages if m.role == "system"), "")
    return f"[{system}] answer to: {prompt.last_user_text}"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REF: answer, MINI: answer}) as srv:
        yield srv


def smart(server: FakeLLMServer, **settings: Any) -> SmartChatModel:
    def model(name: str) -> ChatOpenAI:
        return ChatOpenAI(
            model=name, base_url=server.openai_base_url, api_key=KEY, max_retries=0, timeout=5
        )

    params: dict[str, Any] = {"epsilon": 0.2, "seed": 0, "cache": "exact"}
    params.update(settings)
    return SmartChatModel(reference=model(REF), candidates=[model(MINI)], **params)


def ask(tenant: str, user: str, question: str) -> list[Any]:
    return [SystemMessage(f"You help {user} of {tenant}."), HumanMessage(question)]


def meta(tenant: str, user: str, **more: Any) -> dict[str, Any]:
    return {"metadata": {"smart_tenant": tenant, "smart_user": user, **more}}


def test_three_tenants_two_users_no_answer_crosses_and_repeats_come_from_the_cache(server):
    llm = smart(server, cache_answers="per_user", expected_requests=12, wait_for_probes=True)
    first: dict[tuple[str, str, str], Any] = {}
    requests = 0
    for round_ in range(2):
        for tenant in TENANTS:
            for user in USERS:
                for q in QUESTIONS:
                    reply = llm.invoke(ask(tenant, user, q), config=meta(tenant, user))
                    requests += 1
                    assert f"[You help {user} of {tenant}.] answer to: {q}" == reply.content
                    route = reply.response_metadata["smart"]["route"]
                    if round_ == 0:
                        first[(tenant, user, q)] = route
                    elif first[(tenant, user, q)] == REF:
                        assert route == "cache:exact"
                        assert reply.usage_metadata["total_tokens"] == 0
    assert sum(r == REF for r in first.values()) >= 10  # most first answers were the reference's
    assert server.calls() < requests
    ledger = llm.ledger()
    assert ledger.cache_hits >= 10 and ledger.cache_hits + ledger.cache_misses == requests
    assert "answer cache:" in ledger.summary()


def test_identical_requests_of_other_tenants_or_users_are_not_served_from_the_cache(server):
    shared = smart(server, expected_requests=10)
    msgs = [SystemMessage("You are a support agent."), HumanMessage("How do I reset it?")]
    hits = 0
    for tenant in TENANTS:  # the same request in every tenant: each one's first ask is a call
        config = {"metadata": {"smart_tenant": tenant}}
        first = shared.invoke(msgs, config=config).response_metadata["smart"]["route"]
        again = shared.invoke(msgs, config=config).response_metadata["smart"]["route"]
        assert first != "cache:exact"
        if first == REF:
            assert again == "cache:exact"
            hits += 1
    assert hits >= 2
    per_user = smart(server, expected_requests=10, cache_answers="per_user", store="memory://")
    per_user.invoke(msgs, config=meta("acme", "ann"))
    other = per_user.invoke(msgs, config=meta("acme", "bob"))
    assert other.response_metadata["smart"]["route"] != "cache:exact"
    no_user = per_user.invoke(msgs, config={"metadata": {"smart_tenant": "acme"}})
    assert no_user.response_metadata["smart"]["route"] != "cache:exact"


def test_a_hit_streams_the_cached_answer_as_chunks(server):
    llm = smart(server, wait_for_probes=True)  # a new task probes: the reference answers
    msgs = ask("acme", "ann", "Tell me about my three open tickets please")
    whole = llm.invoke(msgs)
    assert whole.response_metadata["smart"]["route"] == REF
    calls = server.calls(REF)
    chunks = list(llm.stream(msgs))
    assert server.calls(REF) == calls
    assert len(chunks) > 3
    assert "".join(c.content for c in chunks) == whole.content
    assert chunks[-1].response_metadata["smart"]["route"] == "cache:exact"


def test_async_and_the_per_request_opt_out(server):
    llm = smart(server)
    msgs = ask("acme", "ann", "Where is my invoice?")

    async def main() -> list[str]:
        routes = []
        for config in (None, None, {"metadata": {"smart_cache": False}}):
            reply = await llm.ainvoke(msgs, config=config)
            routes.append(reply.response_metadata["smart"]["route"])
        await llm.aflush()
        return routes

    first, again, opted_out = asyncio.run(main())
    assert first == REF and again == "cache:exact" and opted_out != "cache:exact"


def test_the_store_holds_answers_never_keys(server, tmp_path: Path):
    db = tmp_path / "smart.db"
    llm = smart(server, store=f"sqlite:///{db}")
    msgs = ask("acme", "ann", "What is my plan?")
    llm.invoke(msgs)
    assert llm.invoke(msgs).response_metadata["smart"]["route"] == "cache:exact"
    llm.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"answer to: What is my plan?" in raw
    assert KEY.encode() not in raw and b"Authorization" not in raw


def test_a_bad_tenant_names_the_field(server):
    llm = smart(server)
    with pytest.raises(ValueError, match="smart_tenant must be a string"):
        llm.invoke("hi", config={"metadata": {"smart_tenant": 7}})
