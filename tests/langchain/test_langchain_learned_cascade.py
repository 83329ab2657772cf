"""A learned cascade trained online through SmartChatModel (real ChatOpenAI, local server).

The config declares a cascade whose scorer is still to be fit. The adapter serves without it,
its probes also call the cheap model, and once enough probes know both answers the router fits
and freezes the scorer: the cascade then answers requests under its frozen name, and the
certificate the user gets names it.
"""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI

from smart_core.testing import FakeLLMServer
from smart_langchain import SmartChatModel

pytest.importorskip("sklearn")

REF, MINI = "gpt-4o", "gpt-4o-mini"
FROZEN = f"cascade:{MINI}[learned@"


def _model(server: FakeLLMServer, name: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=name, base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=5.0
    )


def _prompts(n: int) -> list[str]:
    return [f"question {i}: a {'tricky' if i % 3 == 0 else 'plain'} one" for i in range(n)]


def test_smart_chat_model_trains_then_serves_the_frozen_cascade(tricky_quiz_server):
    llm = SmartChatModel(
        reference=_model(tricky_quiz_server, REF),
        candidates=[_model(tricky_quiz_server, MINI)],
        comparator="choice:A,B",
        cascades=[{"steps": [{"model": MINI, "scorer": "learned:train=20", "threshold": 0.8}]}],
        epsilon=0.2,
        seed=0,
    )
    served = []
    for prompt in _prompts(160):
        smart = llm.invoke(prompt).response_metadata["smart"]
        served.append((prompt, smart["route"], smart.get("step")))
    routes = [route for _, route, _ in served]
    frozen = [i for i, route in enumerate(routes) if route.startswith(FROZEN)]
    assert frozen, f"the learned cascade never answered: {sorted(set(routes))}"
    assert frozen[0] > 20  # not before its training probes were in
    # The scorer read the request's text: it escalates the tricky requests and accepts the
    # cheap model's answer on many of the plain ones (20 training probes: not on all).
    by_kind = {"tricky": [], "plain": []}
    for i in frozen:
        prompt, _, step = served[i]
        by_kind["tricky" if "tricky" in prompt else "plain"].append(step == "ref")
    escalated = {kind: sum(steps) / len(steps) for kind, steps in by_kind.items() if steps}
    assert escalated["tricky"] >= 0.8
    assert escalated["plain"] <= escalated["tricky"] - 0.3
