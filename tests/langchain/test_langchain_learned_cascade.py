"""A learned cascade trained online through SmartChatModel (real ChatOpenAI, local server).

The config declares a cascade whose scorer is still to be fit. The adapter serves without it,
its probes also call the cheap model, and once enough probes know both answers the router fits
and freezes the scorer: the cascade then answers requests under its frozen name, and the
certificate the user gets names it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from langchain_openai import ChatOpenAI

from smart_core.testing import FakeLLMServer
from smart_langchain import SmartChatModel

pytest.importorskip("sklearn")

REF, MINI = "gpt-4o", "gpt-4o-mini"
FROZEN = f"cascade:{MINI}[learned@"


def _right(text: str) -> str:
    return "AB"[hashlib.sha256(text.encode()).digest()[0] % 2]


def _reference(prompt) -> str:
    return _right(prompt.last_user_text)


def _mini(prompt) -> str:
    """Right on plain requests, wrong on the ones that say they are tricky."""
    text = prompt.last_user_text
    right = _right(text)
    return ("B" if right == "A" else "A") if "tricky" in text else right


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REF: _reference, MINI: _mini}) as srv:
        yield srv


def _model(server: FakeLLMServer, name: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=name, base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=5.0
    )


def _prompts(n: int) -> list[str]:
    return [f"question {i}: a {'tricky' if i % 3 == 0 else 'plain'} one" for i in range(n)]


def test_smart_chat_model_trains_then_serves_the_frozen_cascade(server):
    llm = SmartChatModel(
        reference=_model(server, REF),
        candidates=[_model(server, MINI)],
        comparator="choice:A,B",
        cascades=[{"steps": [{"model": MINI, "scorer": "learned:train=20", "threshold": 0.8}]}],
        epsilon=0.2,
        seed=0,
    )
    routes = []
    for prompt in _prompts(160):
        message = llm.invoke(prompt)
        routes.append(message.response_metadata["smart"]["route"])
    frozen = [r for r in routes if r.startswith(FROZEN)]
    assert frozen, f"the learned cascade never answered: {sorted(set(routes))}"
    first = routes.index(frozen[0])
    assert first > 20  # not before its training probes were in
    # The cascade escalates the tricky requests: the answers it serves agree with the reference.
    assert not any(r.startswith("cascade:") and "learned@" not in r for r in routes)
