"""SmartChatModel.batch()/abatch() in batch mode: SMART draws the order the items are served in."""

from __future__ import annotations

import logging

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_fakes import FAKE_PRICES, FakeChat

from smart_langchain import SmartChatModel


def make(n: int, reference: FakeChat) -> SmartChatModel:
    return SmartChatModel(
        reference=reference,
        candidates=[FakeChat(model_name="fake-small")],
        epsilon=0.05,
        batch_size=n,
        prices=FAKE_PRICES,
        seed=0,
        wait_for_probes=True,
    )


def test_batch_serves_in_a_drawn_order_and_returns_outputs_in_input_order(caplog):
    caplog.set_level(logging.WARNING, logger="smart_core")
    reference = FakeChat(model_name="fake-large")
    llm = make(60, reference)
    chain = ChatPromptTemplate.from_template("item {i}") | llm | StrOutputParser()
    outputs = chain.batch([{"i": i} for i in range(60)], config={"max_concurrency": 1})
    assert outputs == [f"echo: item {i}" for i in range(60)]
    seen = [int(text.split()[-1]) for text in reference.calls]
    assert sorted(seen) == sorted(set(seen)) and seen != sorted(seen)
    assert not [r for r in caplog.records if "order you pass them" in r.getMessage()]


async def test_abatch_serves_in_a_drawn_order_too(caplog):
    caplog.set_level(logging.WARNING, logger="smart_core")
    reference = FakeChat(model_name="fake-large")
    llm = make(40, reference)
    messages = await llm.abatch([f"item {i}" for i in range(40)], {"max_concurrency": 1})
    assert [m.text for m in messages] == [f"echo: item {i}" for i in range(40)]
    seen = [int(text.split()[-1]) for text in reference.calls]
    assert seen != sorted(seen)
    assert not [r for r in caplog.records if "order you pass them" in r.getMessage()]


def test_invoking_items_one_at_a_time_in_batch_mode_warns_once(caplog):
    caplog.set_level(logging.WARNING, logger="smart_core")
    llm = make(10, FakeChat(model_name="fake-large"))
    for i in range(3):
        llm.invoke(f"item {i}")
    warned = [r.getMessage() for r in caplog.records if "order you pass them" in r.getMessage()]
    assert len(warned) == 1 and ".batch()" in warned[0]
