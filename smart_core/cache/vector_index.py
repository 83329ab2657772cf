"""Nearest-neighbour search over a namespace's embedded requests, by cosine similarity.

Brute force with numpy: one matrix-vector product over unit vectors. It is exact (a hit's
similarity is the true nearest one's) and needs no index to build, persist or keep in step with
evictions. ``smart bench nn`` measured it against faiss (docs/benchmarks.md section 9): as fast
as HNSW or IVF at 10k entries (0.24 ms a lookup at 256 dimensions), 35 times slower than IVF at
100k (8 ms), so namespaces much beyond 10k entries want a faiss IVF index behind this interface.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BruteForceIndex"]


class BruteForceIndex:
    """Unit vectors with ids; ``nearest`` is the exact best match by dot product."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._buffer = np.zeros((0, dimensions), dtype=np.float32)  # grown by doubling
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    @property
    def vectors(self) -> np.ndarray:
        return self._buffer[: len(self._ids)]

    @property
    def _vectors(self) -> np.ndarray:
        return self.vectors

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dimensions)
        if len(ids) != len(vectors):
            raise ValueError(f"add: {len(ids)} ids for {len(vectors)} vectors")
        n, needed = len(self._ids), len(self._ids) + len(ids)
        if needed > len(self._buffer):  # amortised: one add is not a copy of every vector
            grown = np.zeros((max(needed, 2 * len(self._buffer), 64), self.dimensions), np.float32)
            grown[:n] = self._buffer[:n]
            self._buffer = grown
        self._buffer[n:needed] = vectors
        self._ids.extend(ids)

    def nearest(self, vector: np.ndarray) -> tuple[str, float] | None:
        """The id closest to ``vector`` and its cosine similarity; None when empty."""
        if not self._ids:
            return None
        scores = self._vectors @ np.asarray(vector, dtype=np.float32).reshape(-1)
        best = int(np.argmax(scores))
        return self._ids[best], float(scores[best])

    def nearest_many(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each row of ``vectors``: the index of its nearest entry and the similarity."""
        scores = np.asarray(vectors, dtype=np.float32) @ self._vectors.T
        best = np.argmax(scores, axis=1)
        return best, scores[np.arange(len(best)), best]
