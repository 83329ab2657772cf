"""Nearest-neighbour search over a namespace's embedded requests, by cosine similarity: the
interface both searches offer, and the exact one.

Brute force with numpy: one matrix-vector product over unit vectors. It is exact (a hit's
similarity is the true nearest one's) and needs no index to build, persist or keep in step with
evictions. ``smart bench nn`` measured it against faiss (docs/benchmarks.md section 9): as fast
as HNSW or IVF at 10k entries (0.24 ms a lookup at 256 dimensions), 35 times slower than IVF at
100k (8 ms), so a namespace grown past a threshold is searched by a faiss IVF index instead
(:mod:`.ivf_index`, switched to by :class:`~smart_core.cache.semantic_index.SemanticIndex`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np

__all__ = ["BruteForceIndex", "VectorIndex"]


class VectorIndex(Protocol):
    """Unit vectors under string ids, kept oldest first; what a namespace is searched with."""

    dimensions: int

    def __len__(self) -> int: ...

    @property
    def ids(self) -> list[str]:
        """The ids, oldest first."""
        ...

    def add(self, ids: list[str], vectors: np.ndarray) -> None: ...

    def nearest(self, vector: np.ndarray) -> tuple[str, float] | None:
        """The id found closest to ``vector`` and its exact cosine similarity; None if none."""
        ...

    def remove(self, ids: Iterable[str]) -> None:
        """Forget ``ids`` (unknown ones are ignored)."""
        ...

    def drop_oldest(self, n: int) -> list[str]:
        """Forget the ``n`` oldest ids; returns them."""
        ...

    def vectors_of(self, ids: list[str]) -> tuple[list[str], np.ndarray]:
        """The vectors of those of ``ids`` still held, with those ids, in the order given."""
        ...


class BruteForceIndex:
    """Unit vectors with ids; ``nearest`` is the exact best match by dot product."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        # Rows [start, start + len) are live: dropping the oldest moves ``start`` instead of
        # copying every vector, and the room freed is reused when the buffer is full, so a full
        # namespace (one drop per add) costs amortised O(1) rows per add, not a copy of all.
        self._buffer = np.zeros((0, dimensions), dtype=np.float32)
        self._start = 0
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    @property
    def vectors(self) -> np.ndarray:
        return self._buffer[self._start : self._start + len(self._ids)]

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dimensions)
        if len(ids) != len(vectors):
            raise ValueError(f"add: {len(ids)} ids for {len(vectors)} vectors")
        n, k = len(self._ids), len(ids)
        if self._start + n + k > len(self._buffer):
            self._make_room(n, k)
        end = self._start + n
        self._buffer[end : end + k] = vectors
        self._ids.extend(ids)

    def _make_room(self, n: int, k: int) -> None:
        size = len(self._buffer)
        if n + k <= size - size // 8:  # enough freed by drops: move the live rows to the front
            self._buffer[:n] = self._buffer[self._start : self._start + n]
        else:  # amortised: one add is not a copy of every vector
            grown = np.zeros((max(n + k, 2 * size, 64), self.dimensions), np.float32)
            grown[:n] = self._buffer[self._start : self._start + n]
            self._buffer = grown
        self._start = 0

    def nearest(self, vector: np.ndarray) -> tuple[str, float] | None:
        """The id closest to ``vector`` and its cosine similarity; None when empty."""
        if not self._ids:
            return None
        scores = self.vectors @ np.asarray(vector, dtype=np.float32).reshape(-1)
        best = int(np.argmax(scores))
        return self._ids[best], float(scores[best])

    def nearest_many(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each row of ``vectors``: the index of its nearest entry and the similarity."""
        scores = np.asarray(vectors, dtype=np.float32) @ self.vectors.T
        best = np.argmax(scores, axis=1)
        return best, scores[np.arange(len(best)), best]

    def remove(self, ids: Iterable[str]) -> None:
        gone = set(ids)
        keep = np.array([i not in gone for i in self._ids], dtype=bool)
        if keep.all():
            return
        kept = self.vectors[keep]  # a copy: the rows are then written over in place
        self._buffer[: len(kept)] = kept
        self._start = 0
        self._ids = [i for i in self._ids if i not in gone]

    def drop_oldest(self, n: int) -> list[str]:
        n = min(max(n, 0), len(self._ids))
        gone = self._ids[:n]
        del self._ids[:n]
        self._start += n
        return gone

    def vectors_of(self, ids: list[str]) -> tuple[list[str], np.ndarray]:
        row = {i: r for r, i in enumerate(self._ids)}
        held = [i for i in ids if i in row]
        return held, self.vectors[[row[i] for i in held]]
