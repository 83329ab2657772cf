"""LangChain messages as :class:`smart_core.Answer`, and the comparator that fits them.

A chat model's answer is text, tool calls (``bind_tools``, ``with_structured_output`` by
function calling) or JSON text (``with_structured_output(method="json_schema")``). The default
comparator, :class:`MessageMatch`, compares each kind canonically so two models agree when they
say the same thing, however they format it.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from smart_core import Answer, JsonMatch, ToolCallMatch, Usage

__all__ = [
    "MessageMatch",
    "answer_from_message",
    "chunk_from_message",
    "logprobs_in",
    "neutral_messages",
]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _details(usage: Mapping[str, Any], field: str, key: str) -> int:
    details = usage.get(field) or {}
    return int(details.get(key) or 0)


def usage_from_message(message: BaseMessage) -> Usage:
    """Token counts as LangChain normalised them (``input_tokens`` includes cached input)."""
    usage = getattr(message, "usage_metadata", None) or {}
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_input_tokens=_details(usage, "input_token_details", "cache_read"),
        cache_write_tokens=_details(usage, "input_token_details", "cache_creation"),
        reasoning_tokens=_details(usage, "output_token_details", "reasoning"),
    )


def tool_calls_of(message: BaseMessage) -> list[dict[str, Any]]:
    """``[{"name", "args"}]`` for every tool call, malformed ones (raw argument text) included."""
    calls = [
        {"name": c.get("name"), "args": c.get("args") or {}}
        for c in getattr(message, "tool_calls", None) or []
    ]
    calls += [
        {"name": c.get("name"), "args": c.get("args") or ""}
        for c in getattr(message, "invalid_tool_calls", None) or []
    ]
    return calls


def answer_from_message(message: BaseMessage, model: str) -> Answer:
    """The engine's view of one chat answer: text, tool calls as ``value``, usage, who answered."""
    text = message.text if isinstance(message.text, str) else str(message.text)
    return Answer(
        text=text,
        value=tool_calls_of(message) or None,
        model=model,
        usage=usage_from_message(message),
        raw=message,
    )


def neutral_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """The request as SMART's cascade scorers read it: ``[{"role", "content"}]`` with OpenAI's
    role names and each message's text, free of LangChain types."""
    out = []
    for m in messages:
        role = _ROLES.get(m.type) or str(getattr(m, "role", m.type))
        text = m.text if isinstance(m.text, str) else str(m.text)
        out.append({"role": role, "content": text})
    return out


def logprobs_in(*infos: Mapping[str, Any] | None) -> tuple[float, ...] | None:
    """Token logprobs as ``ChatOpenAI`` reports them (``{"logprobs": {"content": [{"logprob":
    ...}]}}`` in a generation's ``generation_info`` or a message's ``response_metadata``; a
    stream's chunks merged), from the first of ``infos`` that has them."""
    for info in infos:
        content = ((info or {}).get("logprobs") or {}).get("content")
        if isinstance(content, list) and content:
            return tuple(float(t["logprob"]) for t in content if isinstance(t, Mapping))
    return None


def chunk_from_message(message: AIMessage) -> ChatGenerationChunk:
    """A whole answer as one stream chunk (for inner models that cannot stream)."""
    tool_call_chunks = [
        {
            "name": call["name"],
            "args": json.dumps(call["args"]),
            "id": call.get("id"),
            "index": i,
        }
        for i, call in enumerate(message.tool_calls)
    ]
    chunk = AIMessageChunk(
        content=message.content,
        additional_kwargs=dict(message.additional_kwargs),
        response_metadata=dict(message.response_metadata),
        usage_metadata=message.usage_metadata,
        id=message.id,
        tool_call_chunks=tool_call_chunks,
        chunk_position="last",
    )
    return ChatGenerationChunk(message=chunk)


_JSON = JsonMatch()  # canonical JSON, shared with smart_core's "json" comparator


class MessageMatch(ToolCallMatch):
    """Default comparator of :class:`~smart_langchain.SmartChatModel`.

    Tool calls are compared by name and canonical arguments, in any order (as
    :class:`smart_core.ToolCallMatch`); an answer whose whole text is a JSON object or array is
    compared as canonical JSON (key order, spacing and ``1`` vs ``1.0`` do not matter); any
    other text by normalised equality (case, spacing and a final full stop do not matter).
    """

    __slots__ = ()
    name = "message"

    def key(self, answer: Answer) -> Hashable | None:
        key = super().key(answer)
        if isinstance(key, tuple) and key and key[0] == "text" and answer.text:
            stripped = answer.text.strip()
            if stripped[:1] in "{[":
                try:
                    parsed = json.loads(stripped)
                except ValueError:
                    return key
                if isinstance(parsed, dict | list):
                    return ("json", _JSON.key(Answer(value=parsed)))
        return key
