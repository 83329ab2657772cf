"""SmartLLM.achat from a new event loop per request (``asyncio.run`` in a sync handler):
background probes cut short by the loop ending stay in the sample as differing answers."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.llms import CustomLLM

from smart_llamaindex import SmartLLM


class Echo(CustomLLM):
    """Answers the prompt's last number; ``slow_when_wrong`` differs on every tenth request and
    answers those only after the caller's loop has ended."""

    model: str = "echo"
    slow_when_wrong: bool = False

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, is_chat_model=False)

    def _wrong(self, prompt: str) -> bool:
        return self.slow_when_wrong and int(re.findall(r"\d+", prompt)[-1]) % 10 == 9

    def _answer(self, prompt: str) -> str:
        return "something else" if self._wrong(prompt) else re.findall(r"\d+", prompt)[-1]

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._answer(prompt))

    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        if self._wrong(prompt):
            await asyncio.sleep(0.2)
        return CompletionResponse(text=self._answer(prompt))

    async def achat(self, messages: Any, **kwargs: Any) -> ChatResponse:
        # CustomLLM's own achat calls the sync chat; the delay must happen in the loop.
        prompt = str(messages[-1].content)
        if self._wrong(prompt):
            await asyncio.sleep(0.2)
        return ChatResponse(message=ChatMessage(role="assistant", content=self._answer(prompt)))

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        yield self.complete(prompt)


def test_probes_cut_short_by_each_loop_ending_count_as_differing(caplog):
    caplog.set_level(logging.WARNING, logger="smart_core")
    llm = SmartLLM(
        reference=Echo(model="echo-large"),
        candidates=[Echo(model="echo-small", slow_when_wrong=True)],
        epsilon=0.05,
        expected_requests=100_000,
        audit_rate=0.0,
        prices={"echo-large": (2.5, 10.0), "echo-small": (0.15, 0.6)},
        seed=0,
    )
    highest = 0.0
    for i in range(400):
        response = asyncio.run(llm.achat([ChatMessage(role="user", content=f"item {i}")]))
        bounds = response.additional_kwargs["smart"]["certificate"]["bounds"]
        highest = max(highest, bounds["echo-small"])
    stats = llm.ledger().routes["echo-small"]
    assert stats.probes >= 300 and stats.agreements <= 0.9 * stats.probes + 1
    assert highest <= 0.9, f"bound {highest:.3f} above the true agreement 0.9"
    assert any("cut short" in r.getMessage() for r in caplog.records)
