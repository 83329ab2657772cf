"""OpenAI Chat Completions wire format (``POST /v1/chat/completions``) to and from the shared
:class:`Prompt` / :class:`Completion`, as small pure functions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from ._logprobs import MAX_TOP_LOGPROBS
from ._prompt import Message, Prompt, RequestOptions, Tool, ToolCall
from ._reply import BadRequest, Completion
from ._sse import fragments, frame, text_pieces

__all__ = ["completion_body", "error_body", "parse_request", "stream_frames", "usage_body"]

ErrorKind = Literal["invalid_request", "rate_limit", "server_error"]

_ROLES = {"developer": "system", "function": "tool"}


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str) and p)
    return str(content)


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _message(raw: Mapping[str, Any]) -> Message:
    calls = tuple(
        ToolCall(c["function"]["name"], _arguments(c["function"].get("arguments")), c.get("id"))
        for c in raw.get("tool_calls") or []
        if isinstance(c, dict) and isinstance(c.get("function"), dict)
    )
    role = str(raw.get("role", "user"))
    return Message(_ROLES.get(role, role), _text(raw.get("content")), calls)


def _tool_choice(raw: Any) -> tuple[str, str | None]:
    if raw in ("none", "required"):
        return raw, None
    if isinstance(raw, dict) and isinstance(raw.get("function"), dict):
        return "required", raw["function"].get("name")
    return "auto", None


def _response_format(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    if raw.get("type") == "json_schema":
        spec = raw.get("json_schema") or {}
        return {"type": "json_schema", "schema": spec.get("schema") or {}}
    if raw.get("type") == "json_object":
        return {"type": "json_object"}
    return None


def parse_request(body: Any) -> tuple[Prompt, RequestOptions]:
    """Read a Chat Completions request body; malformed ones raise :class:`BadRequest`."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise BadRequest("the request body must be a JSON object with a string 'model'")
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("'messages' must be a list of message objects")
    tools = tuple(
        Tool(f["name"], f.get("description") or "", f.get("parameters"))
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(f := t.get("function"), dict) and "name" in f
    )
    choice, name = _tool_choice(body.get("tool_choice"))
    prompt = Prompt(
        model=body["model"],
        api="openai",
        messages=tuple(_message(m) for m in messages),
        tools=tools,
        tool_choice=choice,  # type: ignore[arg-type]
        tool_name=name,
        response_format=_response_format(body.get("response_format")),
    )
    stop = body.get("stop")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    logprobs, top = _logprobs_options(body)
    options = RequestOptions(
        stream=bool(body.get("stream")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        logprobs=logprobs,
        top_logprobs=top,
    )
    return prompt, options


def _logprobs_options(body: Mapping[str, Any]) -> tuple[bool, int]:
    """``logprobs`` and ``top_logprobs``, refused as OpenAI refuses them (HTTP 400)."""
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise BadRequest(f"'logprobs' must be a boolean, got {logprobs!r}")
    top = body.get("top_logprobs")
    if top is None:
        return bool(logprobs), 0
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS:
        raise BadRequest(
            f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}, got {top!r}"
        )
    if not logprobs:
        raise BadRequest("'logprobs' must be set to true when 'top_logprobs' is used")
    return True, top


def usage_body(c: Completion) -> dict[str, Any]:
    """The ``usage`` object, with the detail fields ChatOpenAI reads."""
    return {
        "prompt_tokens": c.input_tokens,
        "completion_tokens": c.output_tokens,
        "total_tokens": c.input_tokens + c.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _call(call: ToolCall) -> dict[str, Any]:
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _envelope(c: Completion, kind: str) -> dict[str, Any]:
    return {
        "id": c.id,
        "object": kind,
        "created": 0,
        "model": c.model,
        "system_fingerprint": "fp_fake",
    }


def completion_body(c: Completion) -> dict[str, Any]:
    """A non-streamed ``chat.completion``; ``content`` is null when the answer is only tool
    calls, as OpenAI sends it."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": c.text if c.text or not c.tool_calls else None,
        "refusal": None,
    }
    if c.tool_calls:
        message["tool_calls"] = [_call(t) for t in c.tool_calls]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": _logprobs_body(c.logprobs),
        "finish_reason": c.finish,
    }
    return {**_envelope(c, "chat.completion"), "choices": [choice], "usage": usage_body(c)}


def stream_frames(c: Completion, options: RequestOptions) -> list[str]:
    """The SSE frames of a streamed answer: a role delta, text deltas, tool-call deltas (id and
    name first, then argument fragments), a finish chunk, the ``choices: []`` usage chunk when
    ``stream_options.include_usage`` asked for it, and ``[DONE]``."""

    def chunk(delta: dict[str, Any], finish: str | None = None, tokens: Any = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": tokens, "finish_reason": finish}
        return frame({**_envelope(c, "chat.completion.chunk"), "choices": [choice]})

    frames = [chunk({"role": "assistant", "content": ""})]
    # With logprobs, each content delta carries its own token's entry, as OpenAI streams them.
    pieces = text_pieces(c.text)
    entries = list(c.logprobs) if c.logprobs is not None else [None] * len(pieces)
    frames += [
        chunk({"content": piece}, tokens=_logprobs_body((e,) if e is not None else None))
        for piece, e in zip(pieces, entries, strict=True)
    ]
    for i, call in enumerate(c.tool_calls):
        head = {"index": i, "id": call.id, "type": "function"}
        frames.append(
            chunk({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]})
        )
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        frames += [
            chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
            for part in fragments(arguments)
        ]
    frames.append(chunk({}, c.finish))
    if options.include_usage:
        usage = {**_envelope(c, "chat.completion.chunk"), "choices": [], "usage": usage_body(c)}
        frames.append(frame(usage))
    frames.append(frame("[DONE]"))
    return frames


def _logprobs_body(entries: tuple[dict[str, Any], ...] | None) -> dict[str, Any] | None:
    if entries is None:
        return None
    return {"content": [dict(e) for e in entries], "refusal": None}


_ERROR_TYPES = {
    "invalid_request": ("invalid_request_error", None),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "server_error": ("server_error", None),
}


def error_body(kind: ErrorKind, message: str) -> dict[str, Any]:
    """OpenAI's error envelope; the SDK puts ``message`` into the exception it raises."""
    kind_name, code = _ERROR_TYPES[kind]
    return {"error": {"message": message, "type": kind_name, "param": None, "code": code}}
