"""Translation between OpenAI Chat Completions and the engine / Anthropic (pure functions)."""

from __future__ import annotations

import json

import pytest

from smart_core import ToolCallMatch
from smart_core.providers.chat_completions import (
    UnsupportedRequest,
    answer_from_chunks,
    answer_from_completion,
    chunk_of_completion,
    completion_from_anthropic,
    to_anthropic,
)

TOOL = {
    "type": "function",
    "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
}


def test_an_openai_body_becomes_anthropic_messages():
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            {"role": "user", "content": "And?"},
        ],
        "tools": [TOOL],
        "tool_choice": "required",
        "max_tokens": 50,
        "temperature": 0,
        "stop": "END",
    }
    out = to_anthropic(body, "claude-haiku-4-5")
    assert out["system"] == "Be brief." and out["max_tokens"] == 50
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    # the tool result and the next user turn merge into one user turn, as Anthropic requires
    assert [b["type"] for b in out["messages"][2]["content"]] == ["tool_result", "text"]
    assert out["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "c1",
        "name": "f",
        "input": {},
    }
    assert out["tools"] == [{"name": "f", "description": "d", "input_schema": {"type": "object"}}]
    assert out["tool_choice"] == {"type": "any"} and out["stop_sequences"] == ["END"]


def test_a_json_format_anthropic_cannot_follow_is_refused_naming_the_field():
    # JSON modes themselves are translated (tests/core/providers/test_anthropic_json.py).
    with pytest.raises(UnsupportedRequest, match=r"response_format.json_schema is missing"):
        to_anthropic({"messages": [], "response_format": {"type": "json_schema"}}, "m")


def test_an_anthropic_answer_becomes_a_completion_with_tool_calls():
    message = {
        "id": "msg_1",
        "content": [
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2},
    }
    done = completion_from_anthropic(message, "anthropic:claude-haiku-4-5")
    choice = done["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "Calling."
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"x": 1}
    assert done["usage"]["prompt_tokens"] == 12 and done["usage"]["completion_tokens"] == 5


def test_streamed_chunks_and_the_whole_completion_give_the_same_answer():
    completion = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a": 1}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }
    whole = answer_from_completion("m", completion)
    # the same answer split into deltas, as a provider streams it
    deltas = [
        {"choices": [{"delta": {"role": "assistant"}}]},
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"a"'}}
                        ]
                    }
                }
            ]
        },
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}},
    ]
    streamed = answer_from_chunks("m", deltas)
    assert ToolCallMatch()(whole, streamed)
    assert streamed.usage == whole.usage and whole.usage.input_tokens == 7
    again = answer_from_chunks("m", chunk_of_completion(completion))
    assert ToolCallMatch()(whole, again) and again.usage == whole.usage
    assert answer_from_chunks("m", []) is None


def test_a_streams_finish_reason_is_kept():
    # A stream cut at the token limit must not read as a finished answer (the answer cache
    # replays what it stores).
    chunks = [
        {"choices": [{"delta": {"content": "Once upon"}}]},
        {"choices": [{"delta": {"content": " a"}, "finish_reason": "length"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ]
    answer = answer_from_chunks("m", chunks)
    assert answer is not None and answer.text == "Once upon a"
    assert answer.raw["choices"][0]["finish_reason"] == "length"
    plain = answer_from_chunks("m", chunks[:1])
    assert plain is not None and "finish_reason" not in plain.raw["choices"][0]


def test_anthropic_stream_events_become_the_chunks_of_the_same_answer():
    from smart_core.providers.chat_completions import AnthropicStream

    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 9}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Cal"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "ling."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"x": '},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "1}"},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]
    translate = AnthropicStream("anthropic:claude-haiku-4-5")
    chunks = [c for e in events for c in translate(e)]
    streamed = answer_from_chunks("m", chunks)
    whole = answer_from_completion(
        "m",
        completion_from_anthropic(
            {
                "content": [
                    {"type": "text", "text": "Calling."},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 9, "output_tokens": 5},
            },
            "m",
        ),
    )
    assert streamed.text == "Calling." == whole.text
    assert ToolCallMatch()(streamed, whole) and streamed.usage == whole.usage
    finish = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
    assert finish[-1] == "tool_calls"
