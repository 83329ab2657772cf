"""Anthropic Messages wire translation, without a server."""

from __future__ import annotations

import json

import pytest

from smart_core.testing import BadRequest, Message, ToolCall
from smart_core.testing._anthropic_wire import (
    completion_body,
    error_body,
    parse_request,
    stream_frames,
)
from smart_core.testing._prompt import RequestOptions
from smart_core.testing._reply import Completion

BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "be brief"}],
    "messages": [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "checking"},
                {"type": "tool_use", "id": "t1", "name": "w", "input": {"c": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "sunny"}],
                }
            ],
        },
    ],
    "tools": [
        {"name": "w", "description": "d", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search"},
    ],
    "tool_choice": {"type": "tool", "name": "w"},
    "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    "stop_sequences": ["END"],
    "stream": True,
}


def test_parse_request_normalises_system_tool_results_and_options():
    prompt, options = parse_request(BODY)
    assert prompt.messages == (
        Message("system", "be brief"),
        Message("user", "weather?"),
        Message("assistant", "checking", (ToolCall("w", {"c": "Oslo"}, "t1"),)),
        Message("tool", "sunny"),
    )
    assert [t.name for t in prompt.tools] == ["w"]  # server tools have no input_schema
    assert (prompt.tool_choice, prompt.tool_name) == ("required", "w")
    assert prompt.response_format == {"type": "json_schema", "schema": {"type": "object"}}
    assert (options.stream, options.stop, options.max_tokens) == (True, ("END",), 64)


def test_tool_result_and_text_in_one_turn_give_a_tool_message_then_the_user_text():
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "3"},
                    {"type": "text", "text": "thanks"},
                ],
            }
        ],
    }
    assert parse_request(body)[0].messages == (Message("tool", "3"), Message("user", "thanks"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (None, "auto"),
    ],
)
def test_tool_choices(raw, expected):
    body = {"model": "m", "max_tokens": 5, "messages": [], "tool_choice": raw}
    assert parse_request(body)[0].tool_choice == expected


def test_max_tokens_is_required_as_by_the_real_api():
    with pytest.raises(BadRequest, match="max_tokens"):
        parse_request({"model": "m", "messages": []})


TEXT = Completion("msg_1", "claude-x", "Hello there", (), "stop", None, 5, 2)
STOPPED = Completion("msg_2", "claude-x", "Hel", (), "stop", "lo", 5, 1)
CALLS = Completion(
    "msg_3", "claude-x", "", (ToolCall("w", {"city": "東京"}, "toolu_1"),), "tool_calls", None, 5, 6
)


def test_completion_bodies_map_finish_reasons():
    body = completion_body(TEXT)
    assert (
        body["content"] == [{"type": "text", "text": "Hello there"}]
        and body["stop_reason"] == "end_turn"
    )
    assert body["usage"] == {
        "input_tokens": 5,
        "output_tokens": 2,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert (completion_body(STOPPED)["stop_reason"], completion_body(STOPPED)["stop_sequence"]) == (
        "stop_sequence",
        "lo",
    )
    calls = completion_body(CALLS)
    assert calls["stop_reason"] == "tool_use"
    assert calls["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "東京"}}
    ]


def events(frames: list[str]) -> list[tuple[str, dict]]:
    out = []
    for f in frames:
        head, data = f.rstrip("\n").split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert head == f"event: {payload['type']}"
        out.append((payload["type"], payload))
    return out


def test_stream_event_sequence_and_usage_with_input_tokens_on_message_delta():
    parsed = events(stream_frames(TEXT, RequestOptions(stream=True)))
    kinds = [k for k, _ in parsed]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert (
        "".join(p["delta"]["text"] for k, p in parsed if k == "content_block_delta")
        == "Hello there"
    )
    delta = parsed[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["input_tokens"] == 5 and delta["usage"]["output_tokens"] == 2
    assert parsed[0][1]["message"]["usage"]["input_tokens"] == 5


def test_streamed_tool_use_sends_input_json_deltas():
    parsed = events(stream_frames(CALLS, RequestOptions(stream=True)))
    start = next(p for k, p in parsed if k == "content_block_start")
    assert start["content_block"] == {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}
    partial = "".join(p["delta"]["partial_json"] for k, p in parsed if k == "content_block_delta")
    assert json.loads(partial) == {"city": "東京"}
    assert parsed[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_error_body_uses_anthropic_types():
    assert error_body("rate_limit", "slow") == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow"},
    }
    assert error_body("server_error", "x")["error"]["type"] == "api_error"
