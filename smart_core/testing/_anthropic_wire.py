"""Anthropic Messages wire format (``POST /v1/messages``) to and from the shared
:class:`Prompt` / :class:`Completion`, as small pure functions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from ._prompt import Message, Prompt, RequestOptions, Tool, ToolCall
from ._reply import BadRequest, Completion
from ._sse import fragments, frame, text_pieces

__all__ = ["completion_body", "error_body", "parse_request", "stream_frames", "usage_body"]

ErrorKind = Literal["invalid_request", "rate_limit", "server_error"]

_STOP_REASONS = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return "\n".join(p for p in parts if isinstance(p, str) and p)
    return str(content)


def _messages(raw: Mapping[str, Any]) -> list[Message]:
    """One Anthropic message as shared messages: each ``tool_result`` block becomes a ``tool``
    message (before the text of the same turn, as OpenAI orders them)."""
    role, content = str(raw.get("role", "user")), raw.get("content")
    if not isinstance(content, list):
        return [Message(role, _text(content))]
    blocks = [b for b in content if isinstance(b, dict)]
    results = [
        Message("tool", _text(b.get("content"))) for b in blocks if b.get("type") == "tool_result"
    ]
    calls = tuple(
        ToolCall(str(b.get("name")), b.get("input") or {}, b.get("id"))
        for b in blocks
        if b.get("type") == "tool_use"
    )
    text = _text(blocks)
    if results and not text and not calls:
        return results
    return [*results, Message(role, text, calls)]


def _tool_choice(raw: Any) -> tuple[str, str | None]:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "any":
        return "required", None
    if kind == "tool":
        return "required", raw.get("name")
    if kind == "none":
        return "none", None
    return "auto", None


def _response_format(body: Mapping[str, Any]) -> dict[str, Any] | None:
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return {"type": "json_schema", "schema": fmt.get("schema") or {}}
    return None


def parse_request(body: Any) -> tuple[Prompt, RequestOptions]:
    """Read a Messages request body; malformed ones raise :class:`BadRequest`."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise BadRequest("the request body must be a JSON object with a string 'model'")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not all(isinstance(m, dict) for m in raw_messages):
        raise BadRequest("messages: must be a list of message objects")
    if not isinstance(body.get("max_tokens"), int):
        raise BadRequest("max_tokens: Field required")
    messages = [Message("system", _text(body["system"]))] if body.get("system") else []
    for raw in raw_messages:
        messages += _messages(raw)
    tools = tuple(
        Tool(t["name"], t.get("description") or "", t.get("input_schema"))
        for t in body.get("tools") or []
        if isinstance(t, dict) and "name" in t and "input_schema" in t
    )
    choice, name = _tool_choice(body.get("tool_choice"))
    prompt = Prompt(
        model=body["model"],
        api="anthropic",
        messages=tuple(messages),
        tools=tools,
        tool_choice=choice,  # type: ignore[arg-type]
        tool_name=name,
        response_format=_response_format(body),
    )
    options = RequestOptions(
        stream=bool(body.get("stream")),
        include_usage=True,
        stop=tuple(body.get("stop_sequences") or ()),
        max_tokens=body["max_tokens"],
    )
    return prompt, options


def usage_body(c: Completion) -> dict[str, Any]:
    """The ``usage`` object; ``input_tokens`` excludes cache reads, which are always zero here."""
    return {
        "input_tokens": c.input_tokens,
        "output_tokens": c.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _stop_reason(c: Completion) -> str:
    return "stop_sequence" if c.stop_sequence else _STOP_REASONS[c.finish]


def _blocks(c: Completion) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if c.text or not c.tool_calls:
        blocks.append({"type": "text", "text": c.text})
    blocks += [
        {"type": "tool_use", "id": t.id, "name": t.name, "input": dict(t.arguments)}
        for t in c.tool_calls
    ]
    return blocks


def _message(c: Completion, content: list[dict[str, Any]], *, final: bool) -> dict[str, Any]:
    return {
        "id": c.id,
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": content,
        "stop_reason": _stop_reason(c) if final else None,
        "stop_sequence": c.stop_sequence if final else None,
        "usage": usage_body(c) if final else {**usage_body(c), "output_tokens": 0},
    }


def completion_body(c: Completion) -> dict[str, Any]:
    """A non-streamed ``message``."""
    return _message(c, _blocks(c), final=True)


def stream_frames(c: Completion, options: RequestOptions) -> list[str]:
    """The SSE event sequence: ``message_start``, per block ``content_block_start`` / ``_delta``
    (``text_delta`` or ``input_json_delta``) / ``_stop``, then ``message_delta`` whose usage
    carries ``input_tokens`` too (langchain-anthropic reads streamed usage only there), then
    ``message_stop``."""
    del options  # Anthropic always streams usage.

    def event(kind: str, **data: Any) -> str:
        return frame({"type": kind, **data}, event=kind)

    frames = [event("message_start", message=_message(c, [], final=False))]
    for index, block in enumerate(_blocks(c)):
        if block["type"] == "text":
            frames.append(
                event(
                    "content_block_start", index=index, content_block={"type": "text", "text": ""}
                )
            )
            deltas = [{"type": "text_delta", "text": p} for p in text_pieces(block["text"])]
        else:
            frames.append(
                event("content_block_start", index=index, content_block={**block, "input": {}})
            )
            arguments = json.dumps(block["input"], ensure_ascii=False)
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in fragments(arguments)]
        frames += [event("content_block_delta", index=index, delta=d) for d in deltas]
        frames.append(event("content_block_stop", index=index))
    delta = {"stop_reason": _stop_reason(c), "stop_sequence": c.stop_sequence}
    frames.append(event("message_delta", delta=delta, usage=usage_body(c)))
    frames.append(event("message_stop"))
    return frames


_ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "server_error": "api_error",
}


def error_body(kind: ErrorKind, message: str) -> dict[str, Any]:
    """Anthropic's error envelope; the SDK puts the body into the exception it raises."""
    return {"type": "error", "error": {"type": _ERROR_TYPES[kind], "message": message}}
