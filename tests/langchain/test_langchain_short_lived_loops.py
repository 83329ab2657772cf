"""SmartChatModel.ainvoke called from short-lived event loops (a sync handler running
``asyncio.run(llm.ainvoke(x))`` per request): background probes cut short by the loop ending must
stay in the sample as differing answers, as in the engine (docs/guarantee.md, step 1)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_fakes import FAKE_PRICES, FakeChat

from smart_langchain import SmartChatModel


class SlowWhenWrong(FakeChat):
    """Agrees with the reference except on every tenth request, whose answer differs and comes
    only after the caller's loop has ended."""

    async def _agenerate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        text = messages[-1].text
        if int(text.split()[-1]) % 10 == 9:
            await asyncio.sleep(0.2)
            self.reply = lambda _: "something else"
        else:
            self.reply = None
        return await super()._agenerate(messages, stop, **kwargs)


def test_probes_cut_short_by_each_loop_ending_count_as_differing(caplog):
    caplog.set_level(logging.WARNING, logger="smart_core")
    llm = SmartChatModel(
        reference=FakeChat(model_name="fake-large"),
        candidates=[SlowWhenWrong(model_name="fake-small")],
        epsilon=0.05,
        expected_requests=100_000,
        audit_rate=0.0,
        prices=FAKE_PRICES,
        seed=0,
    )
    highest = 0.0
    for i in range(400):
        message = asyncio.run(llm.ainvoke(f"item {i}"))
        highest = max(highest, message.response_metadata["smart"]["bounds"]["fake-small"])
    stats = llm.ledger().routes["fake-small"]
    assert stats.probes >= 300 and stats.agreements <= 0.9 * stats.probes + 1
    assert highest <= 0.9, f"bound {highest:.3f} above the true agreement 0.9"
    assert any("cut short" in r.getMessage() for r in caplog.records)
