"""Turning a behaviour's answer into a completion: normalisation, stop, max_tokens, ids, tokens."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from smart_core.testing import Message, Prompt, Reply, Tool, ToolCall, count_tokens
from smart_core.testing._prompt import RequestOptions
from smart_core.testing._reply import as_reply, complete, count_prompt_tokens


def prompt(text: str = "hi", api: str = "openai", **kw) -> Prompt:
    return Prompt(model="m", api=api, messages=(Message("user", text),), **kw)


@pytest.mark.parametrize(("text", "tokens"), [("", 1), ("abc", 1), ("abcd", 1), ("abcde", 2)])
def test_count_tokens_is_a_quarter_of_the_characters_rounded_up_at_least_one(text, tokens):
    assert count_tokens(text) == tokens


def test_prompt_tokens_count_tool_definitions_and_history_calls():
    bare = prompt("x" * 40)
    with_tool = prompt("x" * 40, tools=(Tool("lookup", "", {"type": "object"}),))
    assert count_prompt_tokens(bare) == 10
    assert count_prompt_tokens(with_tool) > count_prompt_tokens(bare)


class Point(BaseModel):
    x: int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", Reply(text="text")),
        (ToolCall("f", {"a": 1}), Reply(tool_calls=(ToolCall("f", {"a": 1}),))),
        (
            [ToolCall("f", {}), ToolCall("g", {})],
            Reply(tool_calls=(ToolCall("f", {}), ToolCall("g", {}))),
        ),
        ({"a": "é"}, Reply(text='{"a":"é"}')),
        ([1, 2], Reply(text="[1,2]")),
        (Point(x=3), Reply(text='{"x":3}')),
        (Reply(text="as is", output_tokens=9), Reply(text="as is", output_tokens=9)),
    ],
)
def test_as_reply_accepts_the_documented_shapes(value, expected):
    assert as_reply(value) == expected


def test_as_reply_rejects_anything_else_with_a_message_listing_the_choices():
    with pytest.raises(TypeError, match="return str, ToolCall"):
        as_reply(None)


def test_stop_cuts_at_the_earliest_stop_string_and_records_it():
    c = complete(Reply("one two three"), prompt(), RequestOptions(stop=("three", "two")), number=1)
    assert (c.text, c.finish, c.stop_sequence) == ("one ", "stop", "two")


def test_max_tokens_truncates_text_and_reports_length():
    c = complete(Reply("x" * 100), prompt(), RequestOptions(max_tokens=5), number=1)
    assert (c.text, c.finish, c.output_tokens) == ("x" * 20, "length", 5)


def test_tool_calls_get_api_specific_ids_and_ignore_stop():
    reply = Reply("", (ToolCall("f", {"q": "stop"}), ToolCall("g", {}, id="mine")))
    openai = complete(reply, prompt(), RequestOptions(stop=("stop",)), number=7)
    anthropic = complete(reply, prompt(api="anthropic"), RequestOptions(), number=7)
    assert [t.id for t in openai.tool_calls] == ["call_fake7_0", "mine"]
    assert [t.id for t in anthropic.tool_calls] == ["toolu_fake7_0", "mine"]
    assert (openai.id, anthropic.id) == ("chatcmpl-fake7", "msg_fake7")
    assert openai.finish == "tool_calls" and openai.tool_calls[0].arguments == {"q": "stop"}


def test_logged_token_counts_override_the_estimate():
    c = complete(
        Reply("hi", input_tokens=123, output_tokens=45), prompt(), RequestOptions(), number=1
    )
    assert (c.input_tokens, c.output_tokens) == (123, 45)
    estimated = complete(Reply("x" * 9), prompt("y" * 8), RequestOptions(), number=1)
    assert (estimated.input_tokens, estimated.output_tokens) == (2, 3)
