"""A whole OpenAI Chat Completions request sent to a provider, for ``smart serve``.

The proxy receives Chat Completions bodies (messages, tools, tool_choice, response_format,
sampling parameters) and must send each to whichever model SMART picks, returning an OpenAI
shaped response whatever the provider. OpenAI-compatible providers get the body as it came (with
their own model name); Anthropic gets it translated to the Messages API and its answer translated
back (``response_format`` JSON modes through a forced tool or the system prompt: see
``anthropic_json``). Translation is a set of small pure functions, tested on their own.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..errors import SmartError
from ..task.answer import Answer
from .anthropic_json import json_tool_name, with_json_mode
from .sdk import AnthropicProvider, OpenAIProvider, ProviderError, anthropic_usage, openai_usage

__all__ = [
    "AnthropicStream",
    "UnsupportedRequest",
    "answer_from_chunks",
    "answer_from_completion",
    "chunk_of_completion",
    "complete",
    "completion_from_anthropic",
    "stream",
    "to_anthropic",
]

#: Body fields that belong to the proxy's client, not to the upstream call.
_CLIENT_ONLY = ("model", "stream", "stream_options", "user")


class UnsupportedRequest(SmartError):
    """The request asks for something the chosen provider cannot do (HTTP 400)."""


async def complete(provider: OpenAIProvider | AnthropicProvider, body: Mapping[str, Any]) -> Any:
    """The provider's answer to ``body`` as an OpenAI ``chat.completion`` dict."""
    try:
        return await _complete(provider, body)
    except (UnsupportedRequest, ProviderError):
        raise
    except Exception as exc:
        raise provider.failure(exc) from None


async def _complete(provider: OpenAIProvider | AnthropicProvider, body: Mapping[str, Any]) -> Any:
    if isinstance(provider, OpenAIProvider):
        upstream = {k: v for k, v in body.items() if k not in _CLIENT_ONLY}
        resp = await provider.client.chat.completions.create(model=provider.model, **upstream)
        return resp.model_dump(exclude_none=True)
    resp = await provider.client.messages.create(**to_anthropic(body, provider.model))
    return completion_from_anthropic(resp.model_dump(), provider.name, json_tool_name(body))


async def stream(
    provider: OpenAIProvider | AnthropicProvider, body: Mapping[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """The provider's answer to ``body`` as OpenAI ``chat.completion.chunk`` dicts, the last
    with usage (Anthropic's stream events translated as they come)."""
    if isinstance(provider, AnthropicProvider):
        request = to_anthropic(body, provider.model)
        translate = AnthropicStream(provider.name, json_tool_name(body))
        try:
            events = await provider.client.messages.create(**request, stream=True)
            async for event in events:
                for chunk in translate(event.model_dump()):
                    yield chunk
        except Exception as exc:
            raise provider.failure(exc) from None
        return
    upstream = {k: v for k, v in body.items() if k not in _CLIENT_ONLY}
    try:
        events = await provider.client.chat.completions.create(
            model=provider.model, stream=True, stream_options={"include_usage": True}, **upstream
        )
        async for event in events:
            yield event.model_dump(exclude_none=True)
    except Exception as exc:
        raise provider.failure(exc) from None


# -- the engine's view of an answer ------------------------------------------------------------


def answer_from_completion(model: str, completion: Mapping[str, Any]) -> Answer:
    """Text, tool calls (``value``, compared by ``ToolCallMatch``) and usage of a completion;
    the completion itself travels in ``raw``."""
    choices = completion.get("choices") or [{}]
    message = choices[0].get("message") or {}
    usage = completion.get("usage")
    return Answer(
        text=message.get("content"),
        value=message.get("tool_calls") or None,
        model=model,
        usage=openai_usage(_Usage(usage)) if usage else openai_usage(None),
        raw=dict(completion),
    )


def answer_from_chunks(model: str, chunks: list[Mapping[str, Any]]) -> Answer | None:
    """The answer a stream of chunks spelled out (None if it had none): deltas of text and of
    tool calls merged, usage from the chunk that carries it, and the finish reason (a stream
    cut at ``length`` must not be stored, and replayed from the cache, as a finished answer)."""
    if not chunks:
        return None
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage = finish = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            finish = choice.get("finish_reason") or finish
            delta = choice.get("delta") or {}
            if delta.get("content"):
                text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    call.get("index", 0), {"type": "function", "function": {"arguments": ""}}
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                fn = call.get("function") or {}
                if fn.get("name"):
                    slot["function"]["name"] = fn["name"]
                slot["function"]["arguments"] += fn.get("arguments") or ""
    tool_calls = [calls[i] for i in sorted(calls)] or None
    message = {"role": "assistant", "content": "".join(text) or None, "tool_calls": tool_calls}
    choice: dict[str, Any] = {"index": 0, "message": message}
    if finish:
        choice["finish_reason"] = finish
    return answer_from_completion(model, {"choices": [choice], "usage": usage})


def chunk_of_completion(completion: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A whole completion as the chunks a stream of it would have been."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    delta: dict[str, Any] = {"role": "assistant"}
    if message.get("content") is not None:
        delta["content"] = message["content"]
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
    base = {
        "id": completion.get("id") or f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": completion.get("created") or int(time.time()),
        "model": completion.get("model") or "",
    }
    finish = choice.get("finish_reason") or "stop"
    return [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
        {**base, "choices": [], "usage": completion.get("usage")},
    ]


class _Usage:
    """Attribute access over a usage dict, as :func:`openai_usage` reads the SDK's object."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.prompt_tokens = raw.get("prompt_tokens")
        self.completion_tokens = raw.get("completion_tokens")
        self.prompt_tokens_details = _Details(raw.get("prompt_tokens_details"))
        self.completion_tokens_details = _Details(raw.get("completion_tokens_details"))


class _Details:
    def __init__(self, raw: Mapping[str, Any] | None) -> None:
        raw = raw or {}
        self.cached_tokens = raw.get("cached_tokens")
        self.reasoning_tokens = raw.get("reasoning_tokens")


# -- Anthropic ------------------------------------------------------------------------------------


def to_anthropic(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI Chat Completions body as Anthropic Messages arguments (a JSON
    ``response_format`` becomes a forced tool or a system instruction; see ``anthropic_json``)."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for m in body.get("messages") or []:
        role, content = m.get("role"), m.get("content")
        if role in ("system", "developer"):
            system.append(_text(content))
        elif role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id"),
                "content": _text(content),
            }
            _append(messages, "user", [block])
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            if _text(content):
                blocks.append({"type": "text", "text": _text(content)})
            for call in m.get("tool_calls") or []:
                fn = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "input": _json(fn.get("arguments")),
                    }
                )
            _append(messages, "assistant", blocks)
        else:
            _append(messages, "user", [{"type": "text", "text": _text(content)}])
    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or 1024,
    }
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop"):
        stop = body["stop"]
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object"},
            }
            for t in body["tools"]
        ]
        choice = body.get("tool_choice")
        if choice == "required":
            out["tool_choice"] = {"type": "any"}
        elif isinstance(choice, Mapping):
            out["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
        elif choice == "auto":
            out["tool_choice"] = {"type": "auto"}
    return with_json_mode(out, body, UnsupportedRequest)


def completion_from_anthropic(
    message: Mapping[str, Any], model: str, json_tool: str | None = None
) -> dict[str, Any]:
    """An Anthropic Messages response as an OpenAI ``chat.completion`` dict. ``json_tool`` names
    the tool that carried a ``json_schema`` answer: its input is the message content."""
    blocks = message.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
    answer = next(
        (b for b in blocks if b["type"] == "tool_use" and b.get("name") == json_tool), None
    )
    if answer is not None:  # the JSON is the answer; any text around it is not
        text = json.dumps(answer.get("input") or {})
        blocks = [b for b in blocks if b is not answer]
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})},
        }
        for b in blocks
        if b["type"] == "tool_use"
    ]
    usage = anthropic_usage(_AnthropicUsage(message.get("usage") or {}))
    finish = {"tool_use": "tool_calls", "max_tokens": "length"}.get(
        message.get("stop_reason") or "", "stop"
    )
    if finish == "tool_calls" and not calls:  # only the JSON tool was used: a plain answer
        finish = "stop"
    msg: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        msg["tool_calls"] = calls
    return {
        "id": f"chatcmpl-{message.get('id') or uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
        },
    }


class AnthropicStream:
    """Anthropic Messages stream events as OpenAI ``chat.completion.chunk`` dicts, one event at
    a time: text deltas become content deltas, each tool_use block a tool call whose arguments
    arrive as its JSON deltas, the stop reason a finish chunk, and the usage a final chunk. The
    block of ``json_tool`` (a ``json_schema`` answer) is no tool call: its JSON deltas are the
    content deltas."""

    def __init__(self, model: str, json_tool: str | None = None) -> None:
        self.model = model
        self.json_tool = json_tool
        self.json_blocks: set[int] = set()  # content block indexes carrying the JSON answer
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read = 0
        self.cache_write = 0
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index

    def __call__(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            self.input_tokens = usage.get("input_tokens") or 0
            self.cache_read = usage.get("cache_read_input_tokens") or 0
            self.cache_write = usage.get("cache_creation_input_tokens") or 0
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") != "tool_use":
                return []
            if self.json_tool is not None and block.get("name") == self.json_tool:
                self.json_blocks.add(event.get("index", 0))
                return []
            k = self.tool_index.setdefault(event.get("index", 0), len(self.tool_index))
            call = {
                "index": k,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                if event.get("index", 0) in self.json_blocks:
                    return [self._chunk({"content": delta.get("partial_json", "")})]
                k = self.tool_index.get(event.get("index", 0), 0)
                fn = {"arguments": delta.get("partial_json", "")}
                return [self._chunk({"tool_calls": [{"index": k, "function": fn}]})]
            return []
        if kind == "message_delta":
            self.output_tokens = ((event.get("usage") or {}).get("output_tokens")) or 0
            reason = (event.get("delta") or {}).get("stop_reason") or ""
            finish = {"tool_use": "tool_calls", "max_tokens": "length"}.get(reason, "stop")
            if finish == "tool_calls" and not self.tool_index:  # only the JSON tool was used
                finish = "stop"
            return [self._chunk({}, finish)]
        if kind == "message_stop":
            prompt = self.input_tokens + self.cache_read + self.cache_write
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": self.output_tokens,
                "total_tokens": prompt + self.output_tokens,
            }
            return [{**self._base(), "choices": [], "usage": usage}]
        return []

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        if finish is not None:
            choice["finish_reason"] = finish
        return {**self._base(), "choices": [choice]}


class _AnthropicUsage:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.input_tokens = raw.get("input_tokens") or 0
        self.output_tokens = raw.get("output_tokens") or 0
        self.cache_read_input_tokens = raw.get("cache_read_input_tokens") or 0
        self.cache_creation_input_tokens = raw.get("cache_creation_input_tokens") or 0


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def _json(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments or "{}")
        except ValueError:
            return {}
    return arguments or {}


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Anthropic wants user and assistant turns to alternate: merge consecutive same-role turns."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})
