"""Pure conversions between LlamaIndex responses and :mod:`smart_core` answers.

Kept free of routing state so each rule can be tested on its own: where each provider puts its
token usage (OpenAI: ``raw.usage`` or ``additional_kwargs``; Anthropic: ``raw["usage"]``, or the
message's ``additional_kwargs["usage"]`` when streaming), and how a response becomes the
:class:`~smart_core.Answer` that the comparator sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smart_core import Answer, Usage

__all__ = [
    "answer_from_response",
    "estimate_tokens",
    "logprobs_from_raw",
    "neutral_request",
    "prompt_text",
    "usage_from_response",
]


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _normalise(raw_usage: Any) -> Usage | None:
    """One provider usage record (OpenAI or Anthropic shape, dict or SDK object) as a Usage."""
    if raw_usage is None:
        return None
    if _get(raw_usage, "prompt_tokens") is not None or _get(raw_usage, "completion_tokens"):
        usage = Usage(
            input_tokens=_int(_get(raw_usage, "prompt_tokens")),
            output_tokens=_int(_get(raw_usage, "completion_tokens")),
            cached_input_tokens=_int(
                _get(_get(raw_usage, "prompt_tokens_details"), "cached_tokens")
            ),
            reasoning_tokens=_int(
                _get(_get(raw_usage, "completion_tokens_details"), "reasoning_tokens")
            ),
        )
    elif _get(raw_usage, "input_tokens") is not None or _get(raw_usage, "output_tokens"):
        # Anthropic's input_tokens excludes cache reads and writes; Usage counts the whole prompt.
        cache_read = _int(_get(raw_usage, "cache_read_input_tokens"))
        cache_write = _int(_get(raw_usage, "cache_creation_input_tokens"))
        usage = Usage(
            input_tokens=_int(_get(raw_usage, "input_tokens")) + cache_read + cache_write,
            output_tokens=_int(_get(raw_usage, "output_tokens")),
            cached_input_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
    else:
        return None
    return usage if usage.total_tokens > 0 else None


def usage_from_response(response: Any) -> Usage | None:
    """The token usage a LlamaIndex ``ChatResponse``/``CompletionResponse`` reports, or None.

    Looks where LlamaIndex's own ``TokenCountingHandler`` looks (``raw["usage"]``, then the
    response's ``additional_kwargs``), then at the message's ``additional_kwargs["usage"]``, where
    the Anthropic integration leaves streaming usage.
    """
    raw = getattr(response, "raw", None)
    places = [
        _get(raw, "usage"),
        _get(raw, "usage_metadata"),
        getattr(response, "additional_kwargs", None),
    ]
    message = getattr(response, "message", None)
    if message is not None:
        places.append(_get(getattr(message, "additional_kwargs", None), "usage"))
    for place in places:
        usage = _normalise(place)
        if usage is not None:
            return usage
    return None


def estimate_tokens(text: str) -> int:
    """Token count of ``text`` with LlamaIndex's global tokenizer (offline tiktoken files)."""
    if not text:
        return 0
    try:
        from llama_index.core.utils import get_tokenizer

        return len(get_tokenizer()(text))
    except Exception:  # no tokenizer available: about four characters per token
        return max(1, len(text) // 4)


def prompt_text(messages: Sequence[Any] | str) -> str:
    """The text of a prompt or a chat history, for token estimates."""
    if isinstance(messages, str):
        return messages
    return "\n".join(str(getattr(m, "content", None) or "") for m in messages)


def response_text(response: Any) -> str | None:
    message = getattr(response, "message", None)
    if message is not None:
        return message.content
    return getattr(response, "text", None)


def neutral_request(kind: str, payload: Any) -> list[dict[str, str]]:
    """The request as SMART's cascade scorers read it: ``[{"role", "content"}]`` (a completion's
    prompt as one user message), free of LlamaIndex types."""
    if kind != "chat":
        return [{"role": "user", "content": str(payload[0])}]
    out = []
    for m in payload:
        role = getattr(m.role, "value", m.role)
        out.append({"role": str(role), "content": m.content or ""})
    return out


def answer_from_response(
    response: Any,
    model: str,
    *,
    prompt: str = "",
    tool_calls: Sequence[Any] | None = None,
) -> Answer:
    """The :class:`~smart_core.Answer` for one model's response.

    ``tool_calls`` (LlamaIndex ``ToolSelection`` objects, as the answering model parsed them)
    become ``Answer.value`` as ``[{"name", "args"}]``, which :class:`~smart_core.ToolCallMatch`
    compares by name and canonical arguments; structured outputs produced by function calling
    are compared the same way. When the provider reported no usage (an OpenAI stream without
    ``stream_options.include_usage``), input and output tokens are estimated with the tokenizer.
    """
    text = response_text(response)
    value = None
    if tool_calls:
        value = [{"name": c.tool_name, "args": dict(c.tool_kwargs or {})} for c in tool_calls]
    usage = usage_from_response(response)
    if usage is None:
        usage = Usage(
            input_tokens=estimate_tokens(prompt), output_tokens=estimate_tokens(text or "")
        )
    return Answer(text=text, value=value, model=model, usage=usage)


def logprobs_from_raw(raws: Sequence[Any]) -> tuple[float, ...] | None:
    """The answer's token logprobs from the OpenAI objects behind a response (``raw``: one
    ``ChatCompletion``, or a stream's ``ChatCompletionChunk`` s in order); None when none carry
    any.

    Read from ``raw`` rather than ``ChatResponse.logprobs``: LlamaIndex fills the latter from
    each token's ``top_logprobs`` only (empty unless ``top_logprobs`` > 0, and the most likely
    token rather than the one sampled), and not at all when streaming.
    """
    out: list[float] = []
    found = False
    for raw in raws:
        choices = _get(raw, "choices") or ()
        if not choices:
            continue
        content = _get(_get(choices[0], "logprobs"), "content")
        if content is None:
            continue
        found = True
        out.extend(float(_get(t, "logprob")) for t in content)
    return tuple(out) if found else None
