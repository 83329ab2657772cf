"""Exactly one instrumentation event pair and one TokenCountingHandler record per call, in both
construction orders, and nothing at all from the probe calls running beside it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core import Settings
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from pydantic import Field

from smart_llamaindex import SMART_KEY, usage_from_response

from .conftest import smart
from .test_llm import ADD, METHODS, call

pytestmark = pytest.mark.filterwarnings("ignore:The model:DeprecationWarning")

STARTS = (LLMChatStartEvent, LLMCompletionStartEvent)
ENDS = (LLMChatEndEvent, LLMCompletionEndEvent)


class Collect(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Collect"

    def handle(self, event: BaseEvent, **kwargs) -> None:
        self.events.append(event)

    def count(self, kinds: tuple[type, ...]) -> int:
        return sum(isinstance(e, kinds) for e in self.events)


@pytest.fixture
def events() -> Iterator[Collect]:
    root = get_dispatcher()
    handler = Collect()
    root.add_event_handler(handler)
    try:
        yield handler
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not handler]


@pytest.mark.parametrize("method", METHODS)
async def test_one_event_pair_per_call_and_none_from_probes(server, events, method):
    llm = smart(server, wait_for_probes=True)  # the first call is a probe of both candidates
    before = len(server.requests)
    final, _ = await call(llm, method)
    assert final.additional_kwargs[SMART_KEY]["probe"] is True
    assert len(server.requests) - before == 3  # reference + two candidates were called
    assert events.count(STARTS) == 1 and events.count(ENDS) == 1
    (start,) = [e for e in events.events if isinstance(e, STARTS)]
    assert start.model_dict["model_name"] == "gpt-4o"  # the inner model that answered
    assert start.model_dict["class_name"] == "openai_llm"


async def test_tool_calls_emit_one_pair_too(server, events):
    llm = smart(server, wait_for_probes=True)
    llm.chat_with_tools([ADD], user_msg="Add 3 and 4")
    [r async for r in await llm.astream_chat_with_tools([ADD], user_msg="Add 3 and 4")]
    assert events.count(STARTS) == 2 and events.count(ENDS) == 2


async def test_probe_spans_stay_out_of_the_trace(server):
    root = get_dispatcher()
    spans = SimpleSpanHandler()
    root.add_span_handler(spans)
    try:
        llm = smart(server, wait_for_probes=True)
        llm.chat([ChatMessage(role="user", content="hi")])
        await llm.achat([ChatMessage(role="user", content="hi")])
    finally:
        root.span_handlers = [h for h in root.span_handlers if h is not spans]
    names = [s.id_.split("-")[0] for s in spans.completed_spans]
    # SmartLLM.chat/achat and the reference's own chat/achat; no span from the candidates.
    assert sorted(names) == sorted(
        ["SmartLLM.chat", "OpenAI.chat", "SmartLLM.achat", "OpenAI.achat"]
    ), names


@pytest.mark.slow
@pytest.mark.parametrize("order", ["settings-first", "models-first", "explicit"])
@pytest.mark.parametrize("method", METHODS)
async def test_token_counting_handler_counts_each_call_once(
    server, restore_settings, order, method
):
    counter = TokenCountingHandler()
    if order == "settings-first":  # inner LLMs copy Settings' handlers when built
        Settings.callback_manager = CallbackManager([counter])
        llm = smart(server, wait_for_probes=True)
    elif order == "models-first":  # inner LLMs built with no handlers at all
        llm = smart(server, wait_for_probes=True)
        Settings.callback_manager = CallbackManager([counter])
    else:  # no Settings: the manager is given to SmartLLM only
        llm = smart(server, wait_for_probes=True, callback_manager=CallbackManager([counter]))
    if order != "explicit":
        Settings.llm = llm
        llm = Settings.llm
    final, _ = await call(llm, method)
    assert final.additional_kwargs[SMART_KEY]["probe"] is True  # candidates were called too
    assert len(counter.llm_token_counts) == 1
    (record,) = counter.llm_token_counts
    assert record.prompt_token_count > 0 and record.completion_token_count > 0
    # The count is the reference's reported usage, not a sum over the probed candidates.
    usage = usage_from_response(final)
    assert (record.prompt_token_count, record.completion_token_count) == (
        usage.input_tokens,
        usage.output_tokens,
    )


async def test_a_fallback_shows_the_failed_attempt_and_counts_tokens_once(restore_settings):
    from smart_core.testing import Behaviour, FakeLLMServer, Fault

    from .conftest import HAIKU, MINI, REFERENCE, warm_store

    counter = TokenCountingHandler()
    with FakeLLMServer() as srv:
        llm = smart(
            srv,
            epsilon=0.2,
            audit_rate=0,
            store=warm_store([REFERENCE, MINI, HAIKU], 0.2),
            callback_manager=CallbackManager([counter]),
        )
        srv.models = {n: Behaviour(faults=[Fault("rate_limit")]) for n in (MINI, HAIKU)}
        root = get_dispatcher()
        handler = Collect()
        root.add_event_handler(handler)
        try:
            for _ in range(5):
                r = await llm.achat([ChatMessage(role="user", content="hi")])
                if r.additional_kwargs[SMART_KEY]["fallback"]:
                    break
        finally:
            root.event_handlers = [h for h in root.event_handlers if h is not handler]
    assert r.additional_kwargs[SMART_KEY]["fallback"]
    # The last call: the candidate's failed attempt (a start event, no end event), then the
    # reference's answer. TokenCountingHandler logs an empty record for the failed attempt (as
    # it does for any failing LlamaIndex call) and counts the answer's tokens once.
    starts = [e for e in handler.events if isinstance(e, STARTS)]
    assert starts[-2].model_dict["model_name"] in (MINI, HAIKU)
    assert starts[-1].model_dict["model_name"] == REFERENCE
    assert handler.count(ENDS) == handler.count(STARTS) - 1
    assert [c.total_token_count > 0 for c in counter.llm_token_counts][-2:] == [False, True]
    assert sum(c.total_token_count > 0 for c in counter.llm_token_counts) == handler.count(ENDS)
