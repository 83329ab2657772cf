"""A learned cascade trained online through SmartLLM (real LlamaIndex OpenAI client, local
server), served asynchronously: the fit runs off the event loop, then the frozen cascade
answers under its own name."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.llms import ChatMessage

from smart_llamaindex import SMART_KEY, SmartLLM

from .conftest import openai_llm

pytest.importorskip("sklearn")

REF, MINI = "gpt-4o", "gpt-4o-mini"


def test_smart_llm_trains_online_and_serves_the_frozen_cascade(tricky_quiz_server):
    llm = SmartLLM(
        reference=openai_llm(tricky_quiz_server, REF),
        candidates=[openai_llm(tricky_quiz_server, MINI)],
        comparator="choice:A,B",
        cascades=[{"steps": [{"model": MINI, "scorer": "learned:train=20", "threshold": 0.8}]}],
        epsilon=0.2,
        seed=0,
    )

    async def serve() -> list[dict]:
        records = []
        for i in range(160):
            kind = "tricky" if i % 3 == 0 else "plain"
            ask = [ChatMessage(role="user", content=f"question {i}: a {kind} one")]
            response = await llm.achat(ask)
            records.append(response.additional_kwargs[SMART_KEY])
        return records

    records = asyncio.run(serve())
    routes = [r["route"] for r in records]
    served = [i for i, r in enumerate(routes) if r.startswith(f"cascade:{MINI}[learned@")]
    assert served, f"the learned cascade never answered: {sorted(set(routes))}"
    assert served[0] > 20  # not before its training probes were in
    # It answers from the cheap step when the frozen scorer accepts, else escalates.
    steps = {records[i]["certificate"]["step"] for i in served}
    assert any(s.startswith(f"{MINI}[learned@") for s in steps)
    assert steps - {"ref"} == {s for s in steps if s.startswith(f"{MINI}[learned@")}
