"""Embeddings for the semantic cache: a default that needs no network and no model download,
and the interface any other embedder (a LangChain ``Embeddings``, a LlamaIndex embedding model,
through the adapters) meets.

The default hashes character n-grams (2 to 4 characters, within word boundaries) into a fixed
number of dimensions with scikit-learn's ``HashingVectorizer`` and L2-normalises each vector, so
the dot product of two vectors is their cosine similarity. It knows no meaning, only spelling:
"reset my password" and "password reset" are close, "cancel my order" and "cancel my account"
are close too. That is why semantic hits are to be certified routes, never trusted by threshold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Embedder", "FunctionEmbedder", "HashedNgramEmbedder", "aembed", "unit_rows"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors (rows of a float32 array), one row per text.

    An embedder may also have ``async def aembed(texts)`` (a network model's async client);
    without it the async serving path runs ``embed`` in a worker thread.
    """

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def unit_rows(vectors: Any) -> np.ndarray:
    """``vectors`` as float32 rows of length 1 (a zero row stays zero), so that a dot product
    is a cosine similarity whatever the model returned."""
    rows = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


async def aembed(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """``embedder``'s vectors, awaited: its ``aembed`` if it has one, else ``embed`` in a
    thread (a network call must not block the event loop)."""
    native = getattr(embedder, "aembed", None)
    if native is not None:
        return await native(texts)
    return await asyncio.to_thread(embedder.embed, texts)


class FunctionEmbedder:
    """An embedder from functions returning one vector per text (lists of floats): how the
    adapters wrap a framework's embedding model (LangChain ``embed_documents`` /
    ``aembed_documents``, LlamaIndex ``get_text_embedding_batch`` / its async twin). The
    vectors are L2-normalised here, as models differ on that."""

    def __init__(
        self,
        embed: Callable[[list[str]], Any],
        aembed: Callable[[list[str]], Any] | None = None,
        *,
        name: str = "embedder",
    ) -> None:
        self._embed = embed
        self._aembed = aembed
        self.name = name

    def __repr__(self) -> str:
        return f"FunctionEmbedder({self.name})"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return unit_rows(self._embed(list(texts)))

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        if self._aembed is None:
            return await asyncio.to_thread(self.embed, texts)
        return unit_rows(await self._aembed(list(texts)))


class HashedNgramEmbedder:
    """Hashed character n-grams, L2-normalised (``dimensions`` columns, float32); offline."""

    def __init__(self, dimensions: int = 2**12, ngram_range: tuple[int, int] = (2, 4)) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.dimensions = dimensions
        self._vectorizer = HashingVectorizer(
            analyzer="char_wb",
            ngram_range=ngram_range,
            n_features=dimensions,
            alternate_sign=False,
            norm="l2",
            lowercase=True,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.sparse(texts).toarray(), dtype=np.float32)

    def sparse(self, texts: Sequence[str]) -> Any:
        """The same vectors as a scipy CSR matrix (for many texts at once)."""
        return self._vectorizer.transform(list(texts)).astype(np.float32)
