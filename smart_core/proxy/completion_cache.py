"""The answer cache for ``smart serve``: which Chat Completions request a request is, whose
namespace it belongs to, and how a stored completion is handed back, whole or as a stream.

A request is keyed by its body without the fields that choose how an answer is delivered or who
asks (``model``, which only names the task; ``stream``, ``stream_options``; ``user``, which
names the namespace instead; OpenAI's stored-completion fields ``metadata`` and ``store``;
``service_tier``): so a streamed request is served the entry a whole one wrote and back. Every
other field (messages, the system message included, tools, ``tool_choice``,
``response_format``, sampling parameters, ``n``, ``seed``, ``logprobs``) is part of the key.

The namespace comes from the ``x-smart-tenant`` and ``x-smart-user`` headers; the body's
``user`` field (OpenAI's end-user id) names the user when the header does not. The proxy trusts
them as it trusts the ``x-smart-task`` header: it serves one organisation's clients, behind a
gateway that sets them from the caller's identity (docs/deploy.md).

An entry keeps the completion's choices (message with content, tool calls, refusal; finish
reason; logprobs) and the upstream model's name: no request headers, no keys, no id. A hit comes
back as a fresh completion reporting no token usage, since none were spent on it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ..cache import CachedAnswer
from ..engine.router import SmartRouter
from ..errors import SmartError
from ..providers.chat_completions import answer_from_completion
from ..task.answer import Answer

__all__ = [
    "CACHE_HEADER",
    "TENANT_HEADER",
    "USER_HEADER",
    "CompletionCodec",
    "InvalidCacheRequest",
    "cache_request",
    "request_cache",
    "semantic_parts",
]

#: Request headers naming the tenant and the user, and turning the cache off for one request.
TENANT_HEADER = "x-smart-tenant"
USER_HEADER = "x-smart-user"
CACHE_HEADER = "x-smart-cache"

#: Body fields that change no answer: left out of the key.
_UNKEYED = frozenset(
    {"model", "stream", "stream_options", "user", "metadata", "store", "service_tier"}
)
_NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
_WORDS = re.compile(r"\S+\s*|\s+")
_OFF, _ON = frozenset({"off", "false", "0", "no"}), frozenset({"on", "true", "1", "yes"})


class InvalidCacheRequest(SmartError):
    """A header or field the cache reads is malformed (HTTP 400; the message names it)."""


def request_cache(router: SmartRouter, body: Mapping[str, Any], headers: Mapping[str, str]) -> Any:
    """``body``'s view of ``router``'s answer cache, for ``Calls(cache=...)``; ``None`` when the
    task has no cache, the request opted out (``x-smart-cache: off``), or a per-user task's
    request names no user."""
    if router.cache is None or not _wanted(headers.get(CACHE_HEADER)):
        return None
    request = cache_request(body)
    return router.request_cache(
        request,
        tenant=headers.get(TENANT_HEADER) or None,
        user=_user(headers, body),
        codec=CompletionCodec(),
        **semantic_parts(request),
    )


def _wanted(value: str | None) -> bool:
    if value is None or value.strip().lower() in _ON:
        return True
    if value.strip().lower() in _OFF:
        return False
    raise InvalidCacheRequest(
        f"{CACHE_HEADER}: expected 'off' (serve this request without the answer cache) or "
        f"'on', got {value!r}"
    )


def _user(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    if headers.get(USER_HEADER):
        return headers[USER_HEADER]
    user = body.get("user")
    if user is None or isinstance(user, str):
        return user or None
    raise InvalidCacheRequest(
        f"user: must be a string naming the end user (OpenAI's field), got {user!r}; or name "
        f"the user in the {USER_HEADER} header"
    )


def cache_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """What makes the answer: the body without the fields that change none."""
    return {k: v for k, v in body.items() if k not in _UNKEYED}


def semantic_parts(request: Mapping[str, Any]) -> dict[str, Any]:
    """For the semantic cache: the last message's text, if it is the user's and plain text, and
    the rest of the request, which must match exactly (system message, earlier turns, tools,
    parameters); ``{}`` when there is no such text (the request is looked up exactly only)."""
    messages = request.get("messages") or []
    last = messages[-1] if messages else None
    if not isinstance(last, Mapping) or last.get("role") != "user":
        return {}
    if not isinstance(last.get("content"), str):
        return {}
    return {"text": last["content"], "context": {**request, "messages": messages[:-1]}}


def _finish(choice: Mapping[str, Any]) -> str:
    """The choice's finish reason (a streamed answer merged from chunks has none)."""
    if choice.get("finish_reason"):
        return str(choice["finish_reason"])
    return "tool_calls" if (choice.get("message") or {}).get("tool_calls") else "stop"


def _choices(answer: Answer) -> list[dict[str, Any]]:
    raw = answer.raw
    if isinstance(raw, Mapping) and raw.get("choices"):
        return [dict(c) for c in raw["choices"]]
    message = {"role": "assistant", "content": answer.text}
    if answer.value:
        message["tool_calls"] = answer.value
    return [{"index": 0, "message": message}]


class CompletionCodec:
    """Keeps an answer as its completion's choices; hands it back as a completion or chunks."""

    def encode(self, answer: Answer) -> Any:
        choices = [{**c, "finish_reason": _finish(c)} for c in _choices(answer)]
        raw = answer.raw if isinstance(answer.raw, Mapping) else {}
        return {"choices": choices, "model": raw.get("model") or answer.model}

    def decode(self, cached: CachedAnswer) -> Answer:
        payload = cached.payload or {}
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model") or cached.answer.model,
            "choices": payload.get("choices") or _choices(cached.answer),
            "usage": dict(_NO_USAGE),
        }
        answer = answer_from_completion(cached.answer.model, completion)
        answer.usage = cached.answer.usage
        return answer

    def chunks(self, answer: Answer) -> Iterable[dict[str, Any]]:
        """The stored completion as the stream of it: a role chunk, the text word by word, the
        tool calls, the finish reason, and a last chunk with the (zero) usage, as an upstream
        stream ends."""
        completion = answer.raw if isinstance(answer.raw, Mapping) else {}
        base = {
            "id": completion.get("id") or f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": completion.get("created") or int(time.time()),
            "model": completion.get("model") or answer.model,
        }
        out: list[dict[str, Any]] = []

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
            choice: dict[str, Any] = {"index": index, "delta": delta}
            if finish is not None:
                choice["finish_reason"] = finish
            out.append({**base, "choices": [choice]})

        for position, choice in enumerate(_choices(answer)):
            index = choice.get("index", position)
            message = choice.get("message") or {}
            chunk(index, {"role": "assistant", "content": ""})
            content = message.get("content")
            for piece in _WORDS.findall(content) if isinstance(content, str) else []:
                chunk(index, {"content": piece})
            if message.get("refusal"):
                chunk(index, {"refusal": message["refusal"]})
            calls = message.get("tool_calls") or []
            if calls:
                chunk(index, {"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]})
            chunk(index, {}, _finish(choice))
        out.append({**base, "choices": [], "usage": completion.get("usage") or dict(_NO_USAGE)})
        return out
