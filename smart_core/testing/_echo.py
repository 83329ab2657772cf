"""The default behaviour: deterministic "reasoning" that answers whatever a client asks for in
the shape it asked for (a tool call, JSON matching a schema, plain text), so client libraries and
their standard test suites run end to end without a real model."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ._prompt import Prompt, Tool, ToolCall
from ._reply import Reply

__all__ = ["echo", "instance_from_schema", "quoted_spans"]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# '…' or "…" not glued to a word, so the apostrophe in "don't" does not open a span.
_QUOTED = re.compile(r"""(?<!\w)'([^'\n]+?)'(?!\w)|(?<!\w)"([^"\n]+?)"(?!\w)""")
_MAX_DEPTH = 6


def quoted_spans(text: str) -> list[str]:
    """The '…' and "…" quoted spans of ``text``, in order."""
    return [a or b for a, b in _QUOTED.findall(text)]


class _Source:
    """Hands out the prompt's numbers and quoted strings in order, for synthesised values."""

    def __init__(self, text: str) -> None:
        self.numbers = [float(n) for n in _NUMBER.findall(text)]
        self.strings = quoted_spans(text)

    def number(self) -> float | None:
        return self.numbers.pop(0) if self.numbers else None

    def string(self) -> str | None:
        return self.strings.pop(0) if self.strings else None


def instance_from_schema(schema: Mapping[str, Any], text: str = "") -> Any:
    """A value valid against a JSON schema, filled from ``text``: numbers in the order they
    appear, strings from its quoted spans, else each property's name.

    Handles ``$ref``/``$defs``, ``anyOf``/``oneOf`` (the first non-null branch), ``enum``,
    ``const``, bounds on numbers and ``minItems``; every property is filled, as strict mode
    requires.
    """
    return _build(schema, schema, _Source(text), "value", 0)


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    seen = 0
    while "$ref" in node and seen < 32:
        target: Any = root
        for part in (p for p in str(node["$ref"]).removeprefix("#").split("/") if p):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        node, seen = {**target, **{k: v for k, v in node.items() if k != "$ref"}}, seen + 1
    return node


def _build(node: Any, root: Mapping[str, Any], src: _Source, name: str, depth: int) -> Any:
    if not isinstance(node, Mapping):
        return name
    node = _resolve(node, root)
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    for key in ("anyOf", "oneOf"):
        if node.get(key):
            branches = [b for b in node[key] if _resolve(b, root).get("type") != "null"]
            if not branches or depth >= _MAX_DEPTH:
                return None
            return _build(branches[0], root, src, name, depth)
    if node.get("allOf"):
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            merged.update(_resolve(part, root))
        return _build(merged, root, src, name, depth)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in node else "array" if "items" in node else "string"
    if kind == "object":
        props = node.get("properties") or {}
        if depth >= _MAX_DEPTH:
            return {}
        return {k: _build(v, root, src, k, depth + 1) for k, v in props.items()}
    if kind == "array":
        count = 0 if depth >= _MAX_DEPTH else max(1, int(node.get("minItems", 1)))
        return [_build(node.get("items", {}), root, src, name, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(node, src, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    value = src.string()
    return value if value is not None else name


def _number(node: Mapping[str, Any], src: _Source, *, integer: bool) -> int | float:
    value = src.number()
    value = 0.0 if value is None else value
    step = 1 if integer else 1e-6
    if "minimum" in node:
        value = max(value, node["minimum"])
    if "exclusiveMinimum" in node:
        value = max(value, node["exclusiveMinimum"] + step)
    if "maximum" in node:
        value = min(value, node["maximum"])
    if "exclusiveMaximum" in node:
        value = min(value, node["exclusiveMaximum"] - step)
    return int(value) if integer or float(value).is_integer() else value


def _tool_call(prompt: Prompt) -> ToolCall:
    tool: Tool = next((t for t in prompt.tools if t.name == prompt.tool_name), prompt.tools[0])
    schema = tool.parameters or {"type": "object", "properties": {}}
    args = instance_from_schema(schema, prompt.last_user_text)
    return ToolCall(tool.name, args if isinstance(args, dict) else {})


def echo(prompt: Prompt) -> Reply:
    """Answer in the shape the client asked for, deterministically.

    * tools offered (and ``tool_choice`` not ``"none"``) and the last message is not a tool
      result: call the forced tool, else the first, with arguments built from its schema and the
      last user message (see :func:`instance_from_schema`);
    * a ``json_schema`` response format: an instance of the schema;
    * ``json_object``: an object whose keys are the spans quoted in the last user message;
    * right after a tool result: ``"The tool returned: <result>"``;
    * otherwise ``"Hello! You said: <last user message>"``.
    """
    last = prompt.messages[-1] if prompt.messages else None
    after_tool = last is not None and last.role == "tool"
    if prompt.tools and prompt.tool_choice != "none" and not after_tool:
        return Reply(tool_calls=(_tool_call(prompt),))
    fmt = prompt.response_format or {}
    if fmt.get("type") == "json_schema":
        value = instance_from_schema(fmt.get("schema") or {}, prompt.last_user_text)
        return Reply(text=json.dumps(value, ensure_ascii=False))
    if fmt.get("type") == "json_object":
        keys = quoted_spans(prompt.last_user_text)
        value = {k: k for k in keys} if keys else {"text": _hello(prompt)}
        return Reply(text=json.dumps(value, ensure_ascii=False))
    if after_tool:
        return Reply(text=f"The tool returned: {last.text}")
    return Reply(text=_hello(prompt))


def _hello(prompt: Prompt) -> str:
    said = prompt.last_user_text.strip()
    return f"Hello! You said: {said}" if said else "Hello!"
