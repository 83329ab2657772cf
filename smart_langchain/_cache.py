"""The answer cache for :class:`~smart_langchain.SmartChatModel`: what keys a request, which run
metadata names its tenant and user, and how a reference answer is kept and handed back.

A request is keyed by its messages (the system message included; message ids, response metadata
and usage left out, since they differ between two identical requests), its stop sequences and
every call parameter that reaches the models (tools, tool choice, structured output, temperature,
max tokens). A cached answer comes back as a fresh ``AIMessage`` reporting no token usage: no
tokens were spent on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, message_to_dict
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from smart_core import Answer
from smart_core.cache import CachedAnswer, FunctionEmbedder

from ._convert import answer_from_message, chunk_from_message

__all__ = [
    "CACHE_KEYS",
    "MessageCodec",
    "cache_request",
    "embedder_of",
    "metadata_kwargs",
    "semantic_parts",
]

#: Run metadata (``config={"metadata": {...}}``) the cache reads, also accepted as call kwargs.
TENANT_KEY, USER_KEY, CACHE_KEY = "smart_tenant", "smart_user", "smart_cache"
CACHE_KEYS = frozenset({TENANT_KEY, USER_KEY, CACHE_KEY})
_KEPT_METADATA = ("model_name", "model_provider", "finish_reason", "stop_reason")
_NO_USAGE = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
_WORDS = re.compile(r"\S+\s*|\s+")


def metadata_kwargs(metadata: Mapping[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the cache's run metadata copied in (metadata wins)."""
    found = {k: metadata[k] for k in CACHE_KEYS if k in metadata}
    return {**kwargs, **found} if found else kwargs


def _message(message: BaseMessage) -> dict[str, Any]:
    data = dict(message_to_dict(message)["data"])
    for volatile in ("id", "response_metadata", "usage_metadata"):
        data.pop(volatile, None)
    return data


def cache_request(
    messages: list[BaseMessage], stop: list[str] | None, params: Mapping[str, Any]
) -> dict[str, Any]:
    """What makes an answer: the messages, the stop sequences, the call parameters."""
    return {"messages": [_message(m) for m in messages], "stop": stop, "params": dict(params)}


def semantic_parts(request: Mapping[str, Any]) -> dict[str, Any]:
    """For the semantic cache: the last message's text, if it is the user's and plain text, and
    the rest of the request, which must match exactly (system message, earlier turns, stop,
    tools, parameters); ``{}`` when the request has no such text (an exact lookup only)."""
    messages = request.get("messages") or []
    last = messages[-1] if messages else None
    if not last or last.get("type") != "human" or not isinstance(last.get("content"), str):
        return {}
    return {"text": last["content"], "context": {**request, "messages": messages[:-1]}}


def embedder_of(embeddings: Any) -> FunctionEmbedder | None:
    """A LangChain ``Embeddings`` as smart_core's embedder (``embed_documents``, and
    ``aembed_documents`` on async paths); ``None`` for ``None``."""
    if embeddings is None:
        return None
    if not callable(getattr(embeddings, "embed_documents", None)):
        raise TypeError(
            f"embeddings must be a LangChain Embeddings (with embed_documents), got "
            f"{type(embeddings).__name__}; e.g. OpenAIEmbeddings(model='text-embedding-3-small')"
        )
    return FunctionEmbedder(
        embeddings.embed_documents,
        getattr(embeddings, "aembed_documents", None),
        name=type(embeddings).__name__,
    )


def _message_of(answer: Answer) -> BaseMessage:
    raw = answer.raw
    if isinstance(raw, ChatResult):
        return raw.generations[0].message
    if isinstance(raw, BaseMessage):
        return raw
    return AIMessage(content=answer.text or "")


class MessageCodec:
    """Keeps an answer as its message's content, tool calls and a little response metadata
    (never the client, its headers or keys); hands it back as a ``ChatResult`` or chunks."""

    def encode(self, answer: Answer) -> Any:
        message = _message_of(answer)
        metadata = message.response_metadata or {}
        return {
            "content": message.content,
            "tool_calls": [
                {"name": c["name"], "args": c["args"], "id": c.get("id")}
                for c in getattr(message, "tool_calls", None) or []
            ],
            "response_metadata": {k: metadata[k] for k in _KEPT_METADATA if k in metadata},
        }

    def decode(self, cached: CachedAnswer) -> Answer:
        payload = cached.payload or {}
        message = AIMessage(
            content=payload.get("content", cached.answer.text or ""),
            tool_calls=[{**c, "type": "tool_call"} for c in payload.get("tool_calls") or []],
            response_metadata=dict(payload.get("response_metadata") or {}),
            usage_metadata=dict(_NO_USAGE),  # type: ignore[arg-type]
        )
        answer = answer_from_message(message, cached.answer.model)
        answer.usage = cached.answer.usage
        answer.raw = ChatResult(generations=[ChatGeneration(message=message)])
        return answer

    def chunks(self, answer: Answer) -> Iterable[ChatGenerationChunk]:
        """The text word by word, the tool calls and metadata on the last chunk."""
        message = _message_of(answer)
        content = message.content
        pieces = _WORDS.findall(content) if isinstance(content, str) and content else [content]
        out = [ChatGenerationChunk(message=AIMessageChunk(content=p)) for p in pieces[:-1]]
        last = message.model_copy(update={"content": pieces[-1]})
        out.append(chunk_from_message(last))  # type: ignore[arg-type]
        return out
