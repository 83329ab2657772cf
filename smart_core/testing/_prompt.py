"""What a fake model sees of a request: one frozen view shared by the OpenAI and Anthropic wires,
so a behaviour is written once and answers both APIs alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Message", "Prompt", "RequestOptions", "Tool", "ToolCall"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call: in an assistant message of the history, or returned by a behaviour.

    ``id`` may be left ``None`` in a reply; the server then makes one up (``call_…`` for OpenAI,
    ``toolu_…`` for Anthropic).
    """

    name: str
    arguments: Mapping[str, Any]
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One message reduced to what answers depend on.

    ``role`` is ``"system"``, ``"user"``, ``"assistant"`` or ``"tool"`` (an OpenAI tool message or
    an Anthropic ``tool_result`` block); ``text`` joins the text parts; images and documents are
    dropped.
    """

    role: str
    text: str
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the client offered, with its JSON-schema ``parameters``."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Prompt:
    """The request as a behaviour sees it, the same for both APIs.

    ``tool_choice`` is ``"auto"`` (also when the client sent none), ``"none"`` or ``"required"``;
    when the client forces one tool, it is ``"required"`` and ``tool_name`` names that tool.
    ``response_format`` is ``None``, ``{"type": "json_object"}`` or
    ``{"type": "json_schema", "schema": {...}}`` (Anthropic's ``output_config.format`` included).
    """

    model: str
    api: Literal["openai", "anthropic"]
    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: Literal["auto", "none", "required"] = "auto"
    tool_name: str | None = None
    response_format: Mapping[str, Any] | None = None

    @property
    def last_user_text(self) -> str:
        """Text of the last user message (``""`` if there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""

    @property
    def text(self) -> str:
        """Every message's text, one per line (system included)."""
        return "\n".join(m.text for m in self.messages)


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """The wire-level switches that shape the response but not the answer."""

    stream: bool = False
    include_usage: bool = False
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    #: OpenAI's ``logprobs`` / ``top_logprobs``: token log-probabilities of the answer.
    logprobs: bool = False
    top_logprobs: int = 0
