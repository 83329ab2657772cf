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

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Embedder", "HashedNgramEmbedder"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors (rows of a float32 array), one row per text."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


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
