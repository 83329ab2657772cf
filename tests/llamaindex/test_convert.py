"""Where each provider's LlamaIndex integration leaves token usage, and how a response becomes
the Answer the comparator sees (no network)."""

from __future__ import annotations

from types import SimpleNamespace

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.llms.llm import ToolSelection

from smart_core import ToolCallMatch, Usage
from smart_llamaindex import answer_from_response, usage_from_response


def chat(raw=None, additional_kwargs=None, message_kwargs=None, content="ok") -> ChatResponse:
    message = ChatMessage(role="assistant", content=content, additional_kwargs=message_kwargs or {})
    return ChatResponse(message=message, raw=raw, additional_kwargs=additional_kwargs or {})


def test_openai_usage_object_with_cache_and_reasoning_details():
    usage = SimpleNamespace(
        prompt_tokens=120,
        completion_tokens=30,
        prompt_tokens_details=SimpleNamespace(cached_tokens=100),
        completion_tokens_details=SimpleNamespace(reasoning_tokens=10),
    )
    assert usage_from_response(chat(raw=SimpleNamespace(usage=usage))) == Usage(
        input_tokens=120, output_tokens=30, cached_input_tokens=100, reasoning_tokens=10
    )


def test_openai_usage_in_additional_kwargs_when_raw_has_none():
    r = chat(raw=SimpleNamespace(usage=None), additional_kwargs={"prompt_tokens": 7})
    r.additional_kwargs["completion_tokens"] = 3
    assert usage_from_response(r) == Usage(input_tokens=7, output_tokens=3)


def test_anthropic_usage_counts_cache_reads_and_writes_as_input():
    raw = {
        "usage": SimpleNamespace(
            input_tokens=10,
            output_tokens=5,
            cache_read_input_tokens=90,
            cache_creation_input_tokens=20,
        )
    }
    assert usage_from_response(chat(raw=raw)) == Usage(
        input_tokens=120, output_tokens=5, cached_input_tokens=90, cache_write_tokens=20
    )


def test_anthropic_streaming_usage_on_the_message():
    r = chat(
        raw={"type": "message_stop"},
        message_kwargs={"usage": {"input_tokens": 12, "output_tokens": 4}},
    )
    assert usage_from_response(r) == Usage(input_tokens=12, output_tokens=4)


def test_no_usage_at_all():
    assert usage_from_response(CompletionResponse(text="hi")) is None
    assert usage_from_response(chat(raw={"usage": {"prompt_tokens": 0}})) is None


def test_answer_estimates_tokens_when_the_provider_reported_none():
    answer = answer_from_response(CompletionResponse(text="four words of text"), "m", prompt="hi")
    assert answer.model == "m" and answer.text == "four words of text"
    assert answer.usage.input_tokens >= 1 and answer.usage.output_tokens >= 4


def test_tool_calls_become_comparable_values():
    a = answer_from_response(
        chat(content=None),
        "a",
        tool_calls=[ToolSelection(tool_id="1", tool_name="add", tool_kwargs={"a": 1, "b": 2})],
    )
    b = answer_from_response(
        chat(content=""),
        "b",
        tool_calls=[ToolSelection(tool_id="x", tool_name="add", tool_kwargs={"b": 2, "a": 1})],
    )
    assert a.value == [{"name": "add", "args": {"a": 1, "b": 2}}]
    assert ToolCallMatch()(a, b)  # ids differ, arguments in another order: the same call
    c = answer_from_response(chat(content="3"), "c")
    assert not ToolCallMatch()(c, a)


def test_logprobs_come_from_the_openai_objects_whole_or_streamed():
    from smart_llamaindex._convert import logprobs_from_raw

    def raw(*logprobs: float) -> dict:
        content = [{"token": "x", "logprob": lp, "top_logprobs": []} for lp in logprobs]
        return {"choices": [{"logprobs": {"content": content}}]}

    assert logprobs_from_raw([raw(-0.1, -0.2)]) == (-0.1, -0.2)
    # A stream: the role chunk and the usage chunk carry none; the rest add up in order.
    stream = [{"choices": [{"logprobs": None}]}, raw(-0.1), raw(-0.3), {"choices": []}]
    assert logprobs_from_raw(stream) == (-0.1, -0.3)
    assert logprobs_from_raw([{"choices": [{"logprobs": None}]}, None]) is None
