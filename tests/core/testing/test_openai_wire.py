"""OpenAI Chat Completions wire translation, without a server."""

from __future__ import annotations

import json

import pytest

from smart_core.testing import BadRequest, Message, ToolCall
from smart_core.testing._openai_wire import (
    completion_body,
    error_body,
    parse_request,
    stream_frames,
)
from smart_core.testing._prompt import RequestOptions
from smart_core.testing._reply import Completion

BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "developer", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {}},
                {"type": "text", "text": "up"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "X", "schema": {"type": "object"}, "strict": True},
    },
    "stop": "END",
    "max_completion_tokens": 50,
    "stream": True,
    "stream_options": {"include_usage": True},
}


def test_parse_request_normalises_messages_tools_and_options():
    prompt, options = parse_request(BODY)
    assert prompt.messages == (
        Message("system", "be brief"),
        Message("user", "look\nup"),
        Message("assistant", "", (ToolCall("f", {"q": 1}, "c1"),)),
        Message("tool", "42"),
    )
    assert [t.name for t in prompt.tools] == ["f"] and prompt.tools[0].parameters == {
        "type": "object"
    }
    assert (prompt.tool_choice, prompt.tool_name) == ("required", "f")
    assert prompt.response_format == {"type": "json_schema", "schema": {"type": "object"}}
    assert options == RequestOptions(stream=True, include_usage=True, stop=("END",), max_tokens=50)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, "auto"), ("auto", "auto"), ("none", "none"), ("required", "required")],
)
def test_string_tool_choices(raw, expected):
    prompt, _ = parse_request({"model": "m", "messages": [], "tool_choice": raw})
    assert (prompt.tool_choice, prompt.tool_name) == (expected, None)


@pytest.mark.parametrize(
    "body", [[], {"messages": []}, {"model": "m"}, {"model": "m", "messages": ["x"]}]
)
def test_malformed_requests_raise_bad_request(body):
    with pytest.raises(BadRequest):
        parse_request(body)


TEXT = Completion("chatcmpl-1", "gpt-4o", "Hello there you", (), "stop", None, 3, 4)
CALLS = Completion(
    "chatcmpl-2",
    "gpt-4o",
    "",
    (ToolCall("lookup", {"city": "Zürich", "days": 3}, "call_1"),),
    "tool_calls",
    None,
    3,
    9,
)


def test_completion_body_carries_text_usage_and_the_requested_model():
    body = completion_body(TEXT)
    assert body["model"] == "gpt-4o" and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hello there you"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 3 and body["usage"]["total_tokens"] == 7


def test_tool_call_completion_has_null_content_and_json_arguments():
    message = completion_body(CALLS)["choices"][0]["message"]
    assert message["content"] is None
    call = message["tool_calls"][0]
    assert call["id"] == "call_1" and json.loads(call["function"]["arguments"]) == {
        "city": "Zürich",
        "days": 3,
    }


def chunks(frames: list[str]) -> list:
    assert all(f.startswith("data: ") and f.endswith("\n\n") for f in frames)
    return [f[6:-2] if f == "data: [DONE]\n\n" else json.loads(f[6:-2]) for f in frames]


def test_stream_reassembles_to_the_text_and_ends_with_usage_then_done():
    parsed = chunks(stream_frames(TEXT, RequestOptions(stream=True, include_usage=True)))
    assert parsed[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in parsed[:-2])
    assert text == "Hello there you" and len(parsed) > 5
    assert parsed[-3]["choices"][0]["finish_reason"] == "stop"
    assert parsed[-2]["choices"] == [] and parsed[-2]["usage"]["completion_tokens"] == 4
    assert parsed[-1] == "[DONE]"


def test_stream_without_include_usage_has_no_usage_chunk():
    parsed = chunks(stream_frames(TEXT, RequestOptions(stream=True)))
    assert all(c == "[DONE]" or c["choices"] for c in parsed)


def test_streamed_tool_call_sends_id_and_name_first_then_argument_fragments():
    parsed = chunks(stream_frames(CALLS, RequestOptions(stream=True)))
    deltas = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in parsed[:-1]
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert deltas[0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": ""},
    }
    assert len(deltas) > 2 and all("id" not in d for d in deltas[1:])
    assert json.loads("".join(d["function"]["arguments"] for d in deltas)) == {
        "city": "Zürich",
        "days": 3,
    }
    assert parsed[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_error_body_uses_openai_types():
    assert error_body("rate_limit", "slow down")["error"]["code"] == "rate_limit_exceeded"
    assert error_body("invalid_request", "bad")["error"] == {
        "message": "bad",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
