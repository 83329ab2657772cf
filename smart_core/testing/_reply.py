"""What a behaviour returns, and how that becomes one wire-neutral completion: ``stop`` and
``max_tokens`` applied, ids made up and tokens counted, exactly once for both APIs."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import SmartError
from ._logprobs import default_confidence, token_logprobs
from ._prompt import Prompt, RequestOptions, ToolCall

__all__ = [
    "BadRequest",
    "Completion",
    "Reply",
    "as_reply",
    "complete",
    "count_prompt_tokens",
    "count_tokens",
]


class BadRequest(SmartError):
    """Raise from a behaviour (the replay behaviour does) to answer HTTP 400 with this message;
    the SDKs raise it as their ``BadRequestError`` and do not retry."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A behaviour's answer when a plain string is not enough.

    ``input_tokens`` / ``output_tokens`` override the server's estimate (a replay file's logged
    counts, say); ``None`` keeps the estimate. ``confidence`` is the probability the model gives
    its whole answer, reported as token logprobs when an OpenAI client asks for them
    (``logprobs: true``); ``None``: a fixed function of the text, between 0.5 and 1.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    confidence: float | None = None

    def __post_init__(self) -> None:
        c = self.confidence
        if c is not None and not (isinstance(c, int | float) and 0.0 < c <= 1.0):
            raise ValueError(
                f"Reply.confidence must be a probability in (0, 1], got {c!r}; e.g. "
                "Reply('A', confidence=0.95)"
            )


def count_tokens(text: str) -> int:
    """Deterministic token estimate: one token per four characters, rounded up, at least one."""
    return max(1, math.ceil(len(text) / 4))


def count_prompt_tokens(prompt: Prompt) -> int:
    """Input tokens of a request: its messages, the tool calls in its history, and the tool
    definitions (real providers bill those too), independent of the API it arrived on."""
    parts = [prompt.text]
    parts += [_dumps(c.arguments) for m in prompt.messages for c in m.tool_calls]
    parts += [_dumps({"name": t.name, "parameters": t.parameters}) for t in prompt.tools]
    return count_tokens("\n".join(p for p in parts if p))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def as_reply(value: Any) -> Reply:
    """Normalise what a behaviour returned: text, one or more :class:`ToolCall`, a
    :class:`Reply`, or a structured value (dict, list, number, bool, pydantic model) sent as JSON
    text, as a model answering in JSON mode would."""
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(text=value)
    if isinstance(value, ToolCall):
        return Reply(tool_calls=(value,))
    if isinstance(value, Sequence) and value and all(isinstance(v, ToolCall) for v in value):
        return Reply(tool_calls=tuple(value))
    if hasattr(value, "model_dump_json"):
        return Reply(text=value.model_dump_json())
    if isinstance(value, Mapping | list | tuple | int | float | bool):
        return Reply(text=_dumps(value))
    raise TypeError(
        f"a behaviour returned {type(value).__name__}; return str, ToolCall, a list of ToolCall, "
        "Reply, or a JSON-serialisable value"
    )


@dataclass(frozen=True, slots=True)
class Completion:
    """One finished answer, ready for either wire.

    ``finish`` uses OpenAI's words; ``stop_sequence`` is set when a client stop string cut the
    text (Anthropic reports it as ``stop_reason="stop_sequence"``).
    """

    id: str
    model: str
    text: str
    tool_calls: tuple[ToolCall, ...]
    finish: Literal["stop", "tool_calls", "length"]
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int
    #: OpenAI ``logprobs.content`` entries of the text, when the client asked for them.
    logprobs: tuple[dict[str, Any], ...] | None = None


def complete(reply: Reply, prompt: Prompt, options: RequestOptions, *, number: int) -> Completion:
    """Apply the client's ``stop`` strings and ``max_tokens`` to a reply, give it and its tool
    calls ids (``number`` is the request's sequence number) and count its tokens."""
    prefix = (
        ("chatcmpl-fake", "call_fake") if prompt.api == "openai" else ("msg_fake", "toolu_fake")
    )
    calls = tuple(
        ToolCall(c.name, dict(c.arguments), c.id or f"{prefix[1]}{number}_{i}")
        for i, c in enumerate(reply.tool_calls)
    )
    text, finish, stop_sequence = reply.text, "tool_calls" if calls else "stop", None
    if not calls:
        cuts = [(text.find(s), s) for s in options.stop if s and s in text]
        if cuts:
            at, stop_sequence = min(cuts)
            text = text[:at]
        if options.max_tokens is not None and count_tokens(text) > options.max_tokens:
            text, finish, stop_sequence = text[: max(0, options.max_tokens) * 4], "length", None
    logprobs = None
    if options.logprobs:
        confidence = reply.confidence or default_confidence(text)
        logprobs = tuple(token_logprobs(text, confidence, options.top_logprobs))
    output = reply.output_tokens
    if output is None:
        output = count_tokens(text + "".join(c.name + _dumps(c.arguments) for c in calls))
    return Completion(
        id=f"{prefix[0]}{number}",
        model=prompt.model,
        text=text,
        tool_calls=calls,
        finish=finish,
        stop_sequence=stop_sequence,
        input_tokens=count_prompt_tokens(prompt)
        if reply.input_tokens is None
        else reply.input_tokens,
        output_tokens=output,
        logprobs=logprobs,
    )
