"""Behaviours: shorthands and running sync or async responders."""

from __future__ import annotations

import pytest

from smart_core import ConfigError
from smart_core.testing import Behaviour, Message, Prompt, Reply, echo
from smart_core.testing._behaviour import as_behaviour, respond

PROMPT = Prompt(model="m", api="openai", messages=(Message("user", "hi"),))


def test_shorthands_become_behaviours():
    assert as_behaviour("fixed") == Behaviour("fixed")
    assert as_behaviour(echo).respond is echo
    b = Behaviour(latency=1)
    assert as_behaviour(b) is b
    with pytest.raises(ConfigError, match="must be a Behaviour"):
        as_behaviour(42)  # type: ignore[arg-type]


def test_negative_latency_and_non_fault_entries_are_rejected():
    with pytest.raises(ConfigError, match="latency"):
        Behaviour(latency=-1)
    with pytest.raises(ConfigError, match="Fault objects"):
        Behaviour(faults=["rate_limit"])  # type: ignore[list-item]


async def test_respond_runs_fixed_sync_and_async_responders():
    async def later(prompt: Prompt) -> str:
        return prompt.last_user_text.upper()

    assert await respond(Behaviour("fixed"), PROMPT) == Reply("fixed")
    assert await respond(Behaviour(lambda p: {"n": len(p.messages)}), PROMPT) == Reply('{"n":1}')
    assert await respond(Behaviour(later), PROMPT) == Reply("HI")
    assert await respond(Behaviour(), PROMPT) == Reply("Hello! You said: hi")
