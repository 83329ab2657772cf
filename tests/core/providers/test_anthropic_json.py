"""OpenAI ``response_format`` JSON modes sent to Anthropic and answered back (pure functions):
``json_schema`` as a forced tool whose input is the content, ``json_object`` as a system
instruction; whole answers and streamed ones give the same content."""

from __future__ import annotations

import json

import pytest

from smart_core.providers.anthropic_json import JSON_OBJECT_INSTRUCTION, json_tool_name
from smart_core.providers.chat_completions import (
    AnthropicStream,
    UnsupportedRequest,
    answer_from_chunks,
    answer_from_completion,
    completion_from_anthropic,
    to_anthropic,
)

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
    "required": ["label", "score"],
}
USER = [{"role": "user", "content": "Rate it"}]
ANSWER = {"label": "ok", "score": 1}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def _schema_format(name: str | None = "Rating", schema=SCHEMA) -> dict:
    spec = {"schema": schema, "strict": True}
    if name is not None:
        spec["name"] = name
    return {"type": "json_schema", "json_schema": spec}


def test_a_json_schema_becomes_a_forced_tool_named_after_it():
    out = to_anthropic({"messages": USER, "response_format": _schema_format()}, "claude")
    assert out["tools"] == [
        {"name": "Rating", "description": out["tools"][0]["description"], "input_schema": SCHEMA}
    ]
    assert out["tool_choice"] == {"type": "tool", "name": "Rating"}
    assert "system" not in out  # the schema is enforced by the tool, not asked for in words


def test_schema_names_become_valid_tool_names():
    assert json_tool_name({"response_format": _schema_format("my schema.v2")}) == "my_schema_v2"
    assert json_tool_name({"response_format": _schema_format(None)}) == "json_response"
    assert len(json_tool_name({"response_format": _schema_format("x" * 100)})) == 64
    assert json_tool_name({"response_format": {"type": "json_object"}}) is None
    assert json_tool_name({}) is None


def test_with_the_clients_tools_the_model_must_call_one_or_answer_the_schema():
    body = {"messages": USER, "tools": [TOOL], "response_format": _schema_format()}
    out = to_anthropic(body, "claude")
    assert [t["name"] for t in out["tools"]] == ["lookup", "Rating"]
    assert out["tool_choice"] == {"type": "any"}
    forced = to_anthropic(
        {**body, "tool_choice": {"type": "function", "function": {"name": "lookup"}}}, "claude"
    )
    assert forced["tool_choice"] == {"type": "tool", "name": "lookup"}  # the client's choice
    none = to_anthropic({**body, "tool_choice": "none"}, "claude")
    assert [t["name"] for t in none["tools"]] == ["Rating"]  # no tool of the client's may run
    assert none["tool_choice"] == {"type": "tool", "name": "Rating"}


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        (_schema_format(schema={"type": "array"}), r"schema has type 'array'.*wrap"),
        ({"type": "json_schema"}, r"response_format.json_schema is missing"),
        ({"type": "yaml"}, r"response_format.type 'yaml' is unknown"),
    ],
)
def test_formats_anthropic_cannot_follow_are_refused_naming_the_field(fmt, message):
    with pytest.raises(UnsupportedRequest, match=message):
        to_anthropic({"messages": USER, "response_format": fmt}, "claude")


def test_a_schema_named_like_a_tool_is_refused():
    tool = {"type": "function", "function": {"name": "Rating"}}
    with pytest.raises(UnsupportedRequest, match="also the name of one of the request's tools"):
        to_anthropic(
            {"messages": USER, "tools": [tool], "response_format": _schema_format()}, "claude"
        )


def test_json_object_is_an_instruction_in_the_system_prompt():
    body = {"messages": [{"role": "system", "content": "Be brief."}, *USER]}
    out = to_anthropic({**body, "response_format": {"type": "json_object"}}, "claude")
    assert out["system"] == f"Be brief.\n\n{JSON_OBJECT_INSTRUCTION}"
    alone = to_anthropic({"messages": USER, "response_format": {"type": "json_object"}}, "c")
    assert alone["system"] == JSON_OBJECT_INSTRUCTION and "tools" not in alone
    text = to_anthropic({**body, "response_format": {"type": "text"}}, "claude")
    assert text["system"] == "Be brief."


def _forced_answer(extra: list[dict] | None = None) -> dict:
    return {
        "id": "msg_1",
        "content": [
            *(extra or []),
            {"type": "tool_use", "id": "t1", "name": "Rating", "input": ANSWER},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def test_the_forced_tools_input_comes_back_as_the_content():
    done = completion_from_anthropic(_forced_answer(), "anthropic:claude", "Rating")
    choice = done["choices"][0]
    assert json.loads(choice["message"]["content"]) == {"label": "ok", "score": 1}
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] == "stop"
    # Without the JSON tool's name it stays what it is: a tool call.
    plain = completion_from_anthropic(_forced_answer(), "anthropic:claude")
    assert plain["choices"][0]["finish_reason"] == "tool_calls"


def test_a_client_tool_call_beside_the_schema_tool_stays_a_tool_call():
    other = {"type": "tool_use", "id": "t0", "name": "lookup", "input": {}}
    done = completion_from_anthropic(_forced_answer([other]), "anthropic:claude", "Rating")
    message = done["choices"][0]["message"]
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["lookup"]
    assert json.loads(message["content"])["label"] == "ok"


def _stream_events(name: str = "Rating") -> list[dict]:
    parts = ['{"label": ', '"ok", "sco', 're": 1}']
    return [
        {"type": "message_start", "message": {"usage": {"input_tokens": 10}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t1", "name": name, "input": {}},
        },
        *(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": p},
            }
            for p in parts
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]


def test_streamed_tool_input_deltas_become_content_deltas():
    translate = AnthropicStream("anthropic:claude", "Rating")
    chunks = [c for e in _stream_events() for c in translate(e)]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert not any("tool_calls" in d for d in deltas)
    assert [d["content"] for d in deltas if d.get("content")] == [
        '{"label": ',
        '"ok", "sco',
        're": 1}',
    ]
    assert [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]][-1] == "stop"
    streamed = answer_from_chunks("m", chunks)
    whole = answer_from_completion("m", completion_from_anthropic(_forced_answer(), "m", "Rating"))
    assert json.loads(streamed.text) == json.loads(whole.text) == {"label": "ok", "score": 1}
    assert streamed.value is None and streamed.usage == whole.usage
