"""An upstream embedding model (OpenAI's ``/v1/embeddings``, or any server speaking it) as the
semantic cache's embedder for ``smart serve``.

The offline default (hashed character n-grams) knows spelling, not meaning; a task that wants
paraphrases found names an embedding model (``embedding = "openai:text-embedding-3-small"``).
It is reached through the same provider as the chat models (base URL, key from the server's
environment, timeout, retries), so its errors are scrubbed of the key like theirs; an embedder
that fails costs the request its semantic lookup only (docs/cache.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..cache.embedding import unit_rows
from ..errors import ConfigError
from ..providers.sdk import OpenAIProvider, make_provider, parse_model_spec

__all__ = ["UpstreamEmbedder", "upstream_embedder"]


class UpstreamEmbedder:
    """``provider``'s embedding model: ``aembed`` on the proxy's event loop (its async client),
    ``embed`` through a sync client made on first use with the same address and key."""

    def __init__(self, provider: OpenAIProvider) -> None:
        self.provider = provider
        self._sync: Any = None

    def __repr__(self) -> str:
        return f"UpstreamEmbedder({self.provider.name})"

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        try:
            resp = await self.provider.client.embeddings.create(
                model=self.provider.model, input=list(texts)
            )
        except Exception as exc:
            raise self.provider.failure(exc) from None
        return _rows(resp)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        try:
            resp = self._client().embeddings.create(model=self.provider.model, input=list(texts))
        except Exception as exc:
            raise self.provider.failure(exc) from None
        return _rows(resp)

    def _client(self) -> Any:
        if self._sync is None:
            import openai

            c = self.provider.client
            self._sync = openai.OpenAI(
                api_key=c.api_key, base_url=c.base_url, timeout=c.timeout, max_retries=c.max_retries
            )
        return self._sync

    async def aclose(self) -> None:
        await self.provider.aclose()
        if self._sync is not None:
            self._sync.close()


def _rows(resp: Any) -> np.ndarray:
    return unit_rows([d.embedding for d in sorted(resp.data, key=lambda d: d.index)])


def upstream_embedder(
    spec: str, *, base_url: str | None, timeout: float, max_retries: int
) -> UpstreamEmbedder:
    """The embedder ``spec`` names (``openai:MODEL``: Anthropic serves no embeddings)."""
    parsed = parse_model_spec(spec, field="embedding")
    if parsed.provider != "openai":
        raise ConfigError(
            f"embedding {spec!r}: only OpenAI-compatible embedding models are supported "
            "(Anthropic serves none); e.g. embedding = 'openai:text-embedding-3-small'"
        )
    provider = make_provider(parsed, base_url=base_url, timeout=timeout, max_retries=max_retries)
    assert isinstance(provider, OpenAIProvider)
    return UpstreamEmbedder(provider)
