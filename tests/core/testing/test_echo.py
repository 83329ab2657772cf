"""The default behaviour's deterministic reasoning, and schema instances it builds."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, Field

from smart_core.testing import Message, Prompt, Tool, ToolCall, echo, instance_from_schema
from smart_core.testing._echo import quoted_spans


def prompt(*messages: Message, **kw) -> Prompt:
    return Prompt(model="m", api="openai", messages=messages, **kw)


ADD = Tool(
    "add",
    "",
    {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
)
GREET = Tool("greet", "", {"type": "object", "properties": {"name": {"type": "string"}}})


def test_quoted_spans_ignore_apostrophes_inside_words():
    text = "don't stop: make 'Acme Ltd' and \"你好啊集团\", it's fine"
    assert quoted_spans(text) == ["Acme Ltd", "你好啊集团"]


def test_tools_call_the_first_tool_with_numbers_from_the_prompt_in_order():
    reply = echo(prompt(Message("user", "What is 1 + 2?"), tools=(ADD, GREET)))
    assert reply.tool_calls == (ToolCall("add", {"a": 1, "b": 2}),) and reply.text == ""


def test_a_forced_tool_is_called_with_strings_from_quoted_spans():
    p = prompt(Message("user", "Say hi to 'こんにちは株式会社'"), tools=(ADD, GREET))
    forced = replace(p, tool_choice="required", tool_name="greet")
    assert echo(forced).tool_calls == (ToolCall("greet", {"name": "こんにちは株式会社"}),)


def test_after_a_tool_result_or_with_tool_choice_none_the_answer_is_text():
    after = prompt(
        Message("user", "1+2"), Message("assistant", ""), Message("tool", "3"), tools=(ADD,)
    )
    assert echo(after).text == "The tool returned: 3" and not echo(after).tool_calls
    none = replace(prompt(Message("user", "hi"), tools=(ADD,)), tool_choice="none")
    assert echo(none).text == "Hello! You said: hi"


def test_plain_text_echoes_the_last_user_message():
    p = prompt(
        Message("system", "be brief"),
        Message("user", " first "),
        Message("assistant", "ok"),
        Message("user", " again "),
    )
    assert echo(p).text == "Hello! You said: again"
    assert echo(prompt()).text == "Hello!"


def test_json_object_mode_uses_the_quoted_keys():
    p = prompt(
        Message("user", "Return JSON with 'setup' and 'punchline' keys"),
        response_format={"type": "json_object"},
    )
    assert json.loads(echo(p).text) == {"setup": "setup", "punchline": "punchline"}


class Colour(BaseModel):
    name: Literal["red", "green"]


class Order(BaseModel):
    """A pydantic model exercising $defs/$ref, Optional (anyOf null), bounds and lists."""

    customer: str
    quantity: int = Field(gt=0, le=10)
    price: float
    note: str | None = None
    colours: list[Colour]
    express: bool


def test_json_schema_mode_builds_an_instance_that_validates():
    text = "Order 25 of them at 3.5 for 'Ada' noting 'ring twice'"
    p = prompt(
        Message("user", text),
        response_format={"type": "json_schema", "schema": Order.model_json_schema()},
    )
    order = Order.model_validate_json(echo(p).text)
    assert order.customer == "Ada" and order.note == "ring twice"
    assert order.quantity == 10  # 25 clamped to the schema's maximum
    assert order.price == 3.5 and order.colours == [Colour(name="red")] and order.express


def test_instance_from_schema_falls_back_to_property_names_and_zero():
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "n": {"type": "integer", "minimum": 5}},
    }
    assert instance_from_schema(schema) == {"title": "title", "n": 5}


def test_recursive_schemas_terminate():
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"child": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}},
            }
        },
        "$ref": "#/$defs/Node",
    }
    value = instance_from_schema(schema)
    depth = 0
    while isinstance(value, dict) and value.get("child") is not None:
        value, depth = value["child"], depth + 1
    assert 1 <= depth <= 10
