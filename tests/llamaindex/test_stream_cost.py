"""Streamed answers are priced on every streaming entry point, on the reference and on a routed
candidate, whether or not the OpenAI client asks for usage on streams (docs/llamaindex.md builds
``OpenAI(model=...)`` without ``stream_options``: SmartLLM then estimates the tokens)."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.llms.openai import OpenAI

from smart_core.testing import FakeLLMServer
from smart_llamaindex import SMART_KEY, SmartLLM

from .conftest import MINI, REFERENCE, warm_store
from .test_llm import call

pytestmark = pytest.mark.filterwarnings("ignore:The model:DeprecationWarning")

# Each streaming entry point and its unstreamed twin.
STREAMS = {
    "stream_chat": "chat",
    "astream_chat": "achat",
    "stream_complete": "complete",
    "astream_complete": "acomplete",
}


def openai(server: FakeLLMServer, model: str, *, usage: bool) -> OpenAI:
    extra: dict[str, Any] = {}
    if usage:
        extra["additional_kwargs"] = {"stream_options": {"include_usage": True}}
    return OpenAI(
        model=model,
        api_base=server.openai_base_url,
        api_key="sk-test",
        max_retries=0,
        timeout=10,
        **extra,
    )


def build(server: FakeLLMServer, *, usage: bool, route: str) -> SmartLLM:
    """gpt-4o over gpt-4o-mini; ``route="candidate"`` starts from statistics that route to mini."""
    settings: dict[str, Any] = {"epsilon": 0.2, "seed": 0, "wait_for_probes": True}
    if route == "candidate":
        settings.update(audit_rate=0, store=warm_store([REFERENCE, MINI], 0.2))
    return SmartLLM(
        reference=openai(server, REFERENCE, usage=usage),
        candidates=[openai(server, MINI, usage=usage)],
        **settings,
    )


async def cost_on(llm: SmartLLM, method: str, name: str) -> float:
    """The cost of the first answer of ``method`` that ``name`` gave."""
    for _ in range(30):
        final, _ = await call(llm, method)
        record = final.additional_kwargs[SMART_KEY]
        if record["route"] == name:
            return float(record["cost"])
    raise AssertionError(f"{method}: no answer from {name} in 30 calls")


@pytest.mark.parametrize("usage", [False, True], ids=["usage-not-asked", "usage-asked"])
@pytest.mark.parametrize("route", ["reference", "candidate"])
@pytest.mark.parametrize("method", STREAMS)
async def test_streamed_answers_cost_what_unstreamed_ones_do(
    server: FakeLLMServer, method: str, route: str, usage: bool
) -> None:
    name = REFERENCE if route == "reference" else MINI
    streamed = await cost_on(build(server, usage=usage, route=route), method, name)
    unstreamed = await cost_on(build(server, usage=usage, route=route), STREAMS[method], name)
    assert unstreamed > 0
    if usage:  # the provider's own count, streamed or not
        assert streamed == pytest.approx(unstreamed)
    else:  # LlamaIndex's tokenizer on the prompt and the answer: close, never $0
        assert unstreamed / 2 < streamed < unstreamed * 2


@pytest.mark.parametrize("method", STREAMS)
async def test_probe_candidates_of_a_stream_are_priced(server: FakeLLMServer, method: str) -> None:
    llm = build(server, usage=False, route="reference")
    await call(llm, method)
    await llm.aflush()
    ledger = llm.ledger()
    assert ledger.routes[MINI].probes == 1
    assert ledger.routes[MINI].mean_cost > 0
    assert ledger.probe_candidate_spend > 0
