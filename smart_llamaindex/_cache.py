"""The answer cache for :class:`~smart_llamaindex.SmartLLM`: what keys a request, and how a
reference answer is kept and handed back as a LlamaIndex response.

A request is keyed by its kind (chat or completion), its messages or prompt (the system message
included) and its call parameters (tools as their OpenAI schemas). What is kept is the answer's
text; an answer with tool calls is not kept (their parsed form belongs to the model that made
them). A hit comes back as a fresh ``ChatResponse`` / ``CompletionResponse``; on a hit no inner
LLM runs, so no inner LLM event is emitted for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    MessageRole,
)

from smart_core import Answer
from smart_core.cache import CachedAnswer, FunctionEmbedder

__all__ = ["CACHE_KWARGS", "ResponseCodec", "cache_request", "embedder_of", "semantic_parts"]

#: Call keywords naming the request's tenant and user, and opting it out (``smart_cache=False``).
CACHE_KWARGS = ("smart_tenant", "smart_user", "smart_cache")
_WORDS = re.compile(r"\S+\s*|\s+")


def _tool_schema(tool: Any) -> Any:
    metadata = getattr(tool, "metadata", None)
    return metadata.to_openai_tool() if metadata is not None else tool


def cache_request(kind: str, payload: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What makes an answer: chat messages or the prompt, and every call parameter."""
    params = dict(kwargs)
    if isinstance(params.get("tools"), list | tuple):
        params["tools"] = [_tool_schema(t) for t in params["tools"]]
    if kind == "chat":
        return {"chat": [m.model_dump(mode="json") for m in payload], "params": params}
    prompt, formatted = payload
    return {"complete": prompt, "formatted": formatted, "params": params}


def semantic_parts(request: Mapping[str, Any]) -> dict[str, Any]:
    """For the semantic cache: the text compared by similarity (a chat's last message if it is
    the user's, a completion's prompt) and the rest of the request, which must match exactly;
    ``{}`` when there is no such text (an exact lookup only)."""
    if "chat" in request:
        chat = request["chat"]
        last = chat[-1] if chat else None
        text = _plain_text(last) if last and last.get("role") == "user" else None
        if text is None:
            return {}
        return {"text": text, "context": {**request, "chat": chat[:-1]}}
    prompt = request.get("complete")
    if not isinstance(prompt, str):
        return {}
    return {"text": prompt, "context": {**request, "complete": None}}


def _plain_text(message: Mapping[str, Any]) -> str | None:
    """A dumped ChatMessage's text if it is text only (its blocks, or a ``content`` string)."""
    if isinstance(message.get("content"), str):
        return message["content"]
    blocks = message.get("blocks") or []
    if not blocks or any(b.get("block_type") != "text" for b in blocks):
        return None
    return "".join(str(b.get("text") or "") for b in blocks)


def embedder_of(embed_model: Any) -> FunctionEmbedder | None:
    """A LlamaIndex embedding model as smart_core's embedder (``get_text_embedding_batch``, and
    its async twin on async paths); ``None`` for ``None``."""
    if embed_model is None:
        return None
    if not callable(getattr(embed_model, "get_text_embedding_batch", None)):
        raise TypeError(
            f"embed_model must be a LlamaIndex embedding model (BaseEmbedding), got "
            f"{type(embed_model).__name__}; e.g. OpenAIEmbedding(model='text-embedding-3-small')"
        )
    return FunctionEmbedder(
        embed_model.get_text_embedding_batch,
        getattr(embed_model, "aget_text_embedding_batch", None),
        name=type(embed_model).__name__,
    )


class ResponseCodec:
    """Keeps an answer's text; hands it back as the response ``kind`` (chat or completion)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def encode(self, answer: Answer) -> Any:
        if answer.value:
            raise TypeError("SmartLLM keeps no answer with tool calls in the answer cache")
        return {"text": answer.text or ""}

    def decode(self, cached: CachedAnswer) -> Answer:
        text = (cached.payload or {}).get("text", cached.answer.text or "")
        answer = Answer(text=text, model=cached.answer.model, usage=cached.answer.usage)
        answer.raw = self._response(text, None)
        return answer

    def chunks(self, answer: Answer) -> Iterable[Any]:
        """Cumulative responses word by word, as LlamaIndex streams them."""
        text, so_far, out = answer.text or "", "", []
        for piece in _WORDS.findall(text) or [""]:
            so_far += piece
            out.append(self._response(so_far, piece))
        return out

    def _response(self, text: str, delta: str | None) -> Any:
        if self.kind == "chat":
            message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
            return ChatResponse(message=message, delta=delta)
        return CompletionResponse(text=text, delta=delta)
