"""Shared fixtures: one local OpenAI/Anthropic-compatible server, real LlamaIndex clients pointed
at it, SmartLLM factories, and a guard that restores LlamaIndex's global Settings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.llms.anthropic import Anthropic
from llama_index.llms.openai import OpenAI

from smart_core import Answer, MemoryStore, ModelSpec, SmartConfig, SmartRouter, Usage
from smart_core.testing import FakeLLMServer
from smart_llamaindex import SmartLLM

REFERENCE = "gpt-4o"
MINI = "gpt-4o-mini"
HAIKU = "claude-3-5-haiku-latest"


@pytest.fixture(scope="session")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def openai_llm(server: FakeLLMServer, model: str = REFERENCE, **kwargs: Any) -> OpenAI:
    kwargs.setdefault("timeout", 10)
    return OpenAI(
        model=model,
        api_base=server.openai_base_url,
        api_key="sk-test",
        max_retries=0,
        additional_kwargs={"stream_options": {"include_usage": True}},
        **kwargs,
    )


def anthropic_llm(server: FakeLLMServer, model: str = HAIKU, **kwargs: Any) -> Anthropic:
    kwargs.setdefault("timeout", 10)
    return Anthropic(
        model=model,
        base_url=server.anthropic_base_url,
        api_key="sk-ant-test",
        max_retries=0,
        **kwargs,
    )


def warm_store(
    names: list[str], epsilon: float, n: int = 120, task: str = "default"
) -> MemoryStore:
    """A store whose statistics already show every candidate agreeing on ``n`` probes, so a
    SmartLLM built on it routes almost every call to a candidate."""
    config = SmartConfig(
        task=task,
        epsilon=epsilon,
        reference=ModelSpec(name=names[0]),
        candidates=[ModelSpec(name=c) for c in names[1:]],
        audit_rate=0,
    )

    async def same(_: Any) -> Answer:
        return Answer(text="same", usage=Usage(200, 20))

    store = MemoryStore()
    router = SmartRouter(
        config, dict.fromkeys(names, same), store=store, seed=0, wait_for_probes=True
    )

    async def run() -> None:
        for _ in range(n):
            await router.arun("warm-up")

    with ThreadPoolExecutor(1) as pool:  # callable from inside a running event loop too
        pool.submit(asyncio.run, run()).result()
    return store


def smart(server: FakeLLMServer, *, reference: str = "openai", **kwargs: Any) -> SmartLLM:
    """SmartLLM over real OpenAI and Anthropic clients on the local server.

    ``reference="openai"``: gpt-4o over gpt-4o-mini and claude-3-5-haiku;
    ``reference="anthropic"``: claude-3-7-sonnet over gpt-4o-mini.
    """
    if reference == "openai":
        ref = openai_llm(server, REFERENCE)
        cands = [openai_llm(server, MINI), anthropic_llm(server, HAIKU)]
    else:
        ref = anthropic_llm(server, "claude-3-7-sonnet-latest")
        cands = [openai_llm(server, MINI)]
    kwargs.setdefault("epsilon", 0.05)
    kwargs.setdefault("seed", 0)
    return SmartLLM(reference=ref, candidates=cands, **kwargs)


@pytest.fixture
def restore_settings() -> Iterator[None]:
    """Put LlamaIndex's global Settings back as they were (tests here set Settings.llm)."""
    saved = (Settings._llm, Settings._embed_model, Settings._callback_manager)
    try:
        yield
    finally:
        Settings._llm, Settings._embed_model, Settings._callback_manager = saved
