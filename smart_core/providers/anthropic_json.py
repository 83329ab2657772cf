"""OpenAI ``response_format`` JSON modes on Anthropic's Messages API, for ``smart serve``.

Anthropic has no ``response_format``. What it does have is tools whose input must match a JSON
schema, and a ``tool_choice`` that can force one; so:

* ``json_schema``: the schema becomes a tool named after it (``input_schema`` = the schema),
  ``tool_choice`` forces it, and the ``tool_use`` input that comes back is the message content,
  as a JSON string (streamed: its ``input_json_delta`` fragments are the content deltas). With
  tools of the client's own the model must call one of them or the schema tool, which is what
  OpenAI means by tools plus a response format: a tool call or the JSON answer.
* ``json_object``: no schema to force, so the system prompt asks for one JSON object and nothing
  else (:data:`JSON_OBJECT_INSTRUCTION`). Unlike OpenAI's JSON mode this is an instruction, not a
  constraint on decoding: clients should still parse defensively.

Pure functions over dicts; ``chat_completions`` calls them on the way out and back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import SmartError

__all__ = ["JSON_OBJECT_INSTRUCTION", "json_tool_name", "with_json_mode"]

#: Appended to the system prompt for ``response_format: {"type": "json_object"}``.
JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no text before or after it and "
    "no Markdown code fence."
)

_DEFAULT_NAME = "json_response"
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def _format(body: Mapping[str, Any]) -> Mapping[str, Any]:
    fmt = body.get("response_format")
    return fmt if isinstance(fmt, Mapping) else {}


def json_tool_name(body: Mapping[str, Any]) -> str | None:
    """The name of the tool that carries a ``json_schema`` answer, or None for other formats:
    the schema's ``name`` in the characters Anthropic allows in a tool name (64 at most)."""
    fmt = _format(body)
    if fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema") or {}
    name = spec.get("name") if isinstance(spec, Mapping) else None
    return _UNSAFE.sub("_", str(name or _DEFAULT_NAME))[:64]


def with_json_mode(
    request: Mapping[str, Any], body: Mapping[str, Any], error: type[SmartError]
) -> dict[str, Any]:
    """The Anthropic ``request`` with ``body``'s JSON ``response_format`` added; ``error`` is
    raised, naming the field, for a format Anthropic cannot be made to follow."""
    request = dict(request)
    kind = _format(body).get("type")
    if kind == "json_object":
        system = request.get("system")
        request["system"] = (
            f"{system}\n\n{JSON_OBJECT_INSTRUCTION}" if system else JSON_OBJECT_INSTRUCTION
        )
    elif kind == "json_schema":
        _force_schema_tool(request, body, error)
    elif kind not in (None, "text"):
        raise error(
            f"response_format.type {kind!r} is unknown; use 'text', 'json_object' or 'json_schema'"
        )
    return request


def _force_schema_tool(
    request: dict[str, Any], body: Mapping[str, Any], error: type[SmartError]
) -> None:
    spec = _format(body).get("json_schema")
    if not isinstance(spec, Mapping):
        raise error(
            "response_format.json_schema is missing; send {'type': 'json_schema', "
            "'json_schema': {'name': ..., 'schema': {...}}}"
        )
    schema = spec.get("schema") or {"type": "object"}
    if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
        got = schema.get("type") if isinstance(schema, Mapping) else type(schema).__name__
        raise error(
            f"response_format.json_schema.schema has type {got!r}; an Anthropic model answers a "
            "schema through a tool, whose input must be an object: wrap the value in an object "
            "property (e.g. {'type': 'object', 'properties': {'items': <schema>}})"
        )
    name = json_tool_name(body)
    tools = list(request.get("tools") or [])
    if any(t.get("name") == name for t in tools):
        raise error(
            f"response_format.json_schema.name {name!r} is also the name of one of the request's "
            "tools; give the schema another name"
        )
    description = spec.get("description") or (
        "Give your answer as this tool's input: a JSON object matching its schema."
    )
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        # Nothing else may be called: the schema tool is the answer.
        request["tools"] = [_tool(name, description, schema)]
        request["tool_choice"] = {"type": "tool", "name": name}
        return
    request["tools"] = [*tools, _tool(name, description, schema)]
    if not isinstance(choice, Mapping):  # auto / required: a tool call, or the JSON answer
        request["tool_choice"] = {"type": "any"}


def _tool(name: str | None, description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": description, "input_schema": dict(schema)}
