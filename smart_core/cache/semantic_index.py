"""Where a request's nearest earlier request is found: one vector index per namespace.

A namespace is (task, scope, context): the scope is the tenant (and the user, for per-user
answers), the context the hash of everything in the request but the text compared by similarity
(the system message, earlier turns, tools, parameters). So a similar question is looked for only
among requests of the same tenant (and user) asked in the very same context: a system message
naming its user keeps each user's requests apart even when a tenant shares answers, and no
vector of one tenant is ever compared with another's.

The vectors live in this process (the answers stay in the store, with their expiry); an entry
the store has dropped is a miss when it is found, and is forgotten then.
"""

from __future__ import annotations

import threading

import numpy as np

from .vector_index import BruteForceIndex

__all__ = ["SemanticIndex"]

Namespace = tuple[str, str, str]


class SemanticIndex:
    """Exact nearest-neighbour search per namespace, at most ``max_entries`` vectors each
    (the oldest are forgotten first); safe to use from several threads."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._indexes: dict[Namespace, BruteForceIndex] = {}
        self._keys: dict[Namespace, set[str]] = {}

    def add(self, namespace: Namespace, key: str, vector: np.ndarray) -> None:
        """Remember that the entry ``key`` answered a request whose text embeds to ``vector``."""
        vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        with self._lock:
            keys = self._keys.setdefault(namespace, set())
            if key in keys:
                return
            index = self._indexes.get(namespace)
            if index is None or index.dimensions != vector.shape[1]:
                index = self._indexes[namespace] = BruteForceIndex(vector.shape[1])
                keys.clear()
            if len(index) >= self.max_entries:
                self._drop_oldest(namespace, index, len(index) - self.max_entries + 1)
            index.add([key], vector)
            keys.add(key)

    def nearest(self, namespace: Namespace, vector: np.ndarray) -> tuple[str, float] | None:
        """The key of the closest earlier request in ``namespace`` and its cosine similarity."""
        with self._lock:
            index = self._indexes.get(namespace)
            if index is None or index.dimensions != np.asarray(vector).size:
                return None
            return index.nearest(vector)

    def forget(self, namespace: Namespace, key: str) -> None:
        """Drop ``key`` (its entry expired or was evicted from the store)."""
        with self._lock:
            index = self._indexes.get(namespace)
            if index is None or key not in self._keys.get(namespace, ()):
                return
            keep = [i for i, k in enumerate(index.ids) if k != key]
            self._rebuild(namespace, index, keep)

    def _drop_oldest(self, namespace: Namespace, index: BruteForceIndex, n: int) -> None:
        self._rebuild(namespace, index, list(range(n, len(index))))

    def _rebuild(self, namespace: Namespace, index: BruteForceIndex, keep: list[int]) -> None:
        fresh = BruteForceIndex(index.dimensions)
        every = index.ids
        ids = [every[i] for i in keep]
        if ids:
            fresh.add(ids, index.vectors[keep])
        self._indexes[namespace] = fresh
        self._keys[namespace] = set(ids)
