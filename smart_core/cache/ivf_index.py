"""Approximate nearest-neighbour search for a large namespace: a faiss IVF index.

``smart bench nn`` (docs/benchmarks.md section 9) measured, at 256 dimensions, one lookup at a
time: numpy's exact product takes 8 ms at 100k entries and 104 ms at 1M, faiss IndexIVFFlat
(nlist 1024, nprobe 16) 0.23 ms and 1.8 ms with recall@1 1.00 and 0.99, built in 4 s and 6.5 s;
HNSW took 859 s to build at 1M for a recall of 0.58, and faiss's flat index is slower than numpy.
So IVF, and IVF *flat*: it keeps each vector whole, so the similarity of the entry it finds is
that entry's exact cosine, and only *which* entry is found can differ from the exact search.

faiss is an optional dependency (``pip install 'smart-llm[ann]'``); :func:`load_faiss` is the
one place that imports it, and None from it means namespaces stay on the exact search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from itertools import islice
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["IVFIndex", "build_ivf", "load_faiss", "nlist_for"]

#: Fewest training vectors per list: faiss's k-means warns below 39 points per centroid.
MIN_POINTS_PER_LIST = 39
#: Most lists: the measured configuration (nlist 1024, nprobe 16: recall@1 0.99 at 1M entries).
MAX_LISTS = 1024
#: Training sample per list: k-means costs (sample x lists x dimensions), which at 4,096
#: dimensions is seconds; 64 points a centroid place the lists as well for search.
TRAIN_POINTS_PER_LIST = 64


def load_faiss() -> ModuleType | None:
    """The faiss module, or None when faiss-cpu is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def nlist_for(n: int) -> int:
    """Lists for ``n`` vectors: about 4 sqrt(n) (so nprobe lists are a small share of the
    vectors), at most :data:`MAX_LISTS`, and few enough to train each on 39 vectors."""
    return max(1, min(int(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST, MAX_LISTS))


class IVFIndex:
    """faiss ``IndexIVFFlat`` by inner product over unit vectors with string ids, oldest first.

    faiss knows int64 ids; they are handed out in insertion order, so the oldest entries are the
    first of ``_ids`` (a dict keeps insertion order) and dropping them is removing their ids.
    Not thread-safe: :class:`~smart_core.cache.semantic_index.SemanticIndex` holds its lock."""

    def __init__(self, faiss: Any, dimensions: int, nlist: int, nprobe: int = 16) -> None:
        self.dimensions = dimensions
        self.nlist = nlist
        self._faiss = faiss
        self._quantizer = faiss.IndexFlatIP(dimensions)  # the index keeps no reference to it
        self._index = faiss.IndexIVFFlat(
            self._quantizer, dimensions, nlist, faiss.METRIC_INNER_PRODUCT
        )
        self._index.nprobe = min(nprobe, nlist)
        self._index.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
        # A hash table from id to list slot: removing an id and reading its vector back do not
        # scan every list (one drop per add once a namespace is full).
        self._index.set_direct_map_type(faiss.DirectMap.Hashtable)
        self._keys: dict[int, str] = {}
        self._ids: dict[str, int] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def train(self, sample: np.ndarray) -> None:
        self._index.train(np.ascontiguousarray(sample, dtype=np.float32))

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dimensions)
        if len(ids) != len(vectors):
            raise ValueError(f"add: {len(ids)} ids for {len(vectors)} vectors")
        numbers = np.arange(self._next, self._next + len(ids), dtype=np.int64)
        self._index.add_with_ids(vectors, numbers)
        for key, number in zip(ids, numbers.tolist(), strict=True):
            self._keys[number] = key
            self._ids[key] = number
        self._next += len(ids)

    def nearest(self, vector: np.ndarray) -> tuple[str, float] | None:
        query = np.asarray(vector, dtype=np.float32).reshape(1, self.dimensions)
        if not self._ids:
            return None
        _, found = self._index.search(query, 1)
        number = int(found[0, 0])
        if number < 0:  # every probed list empty
            return None
        # The stored vector is whole: its dot product is the exact cosine, computed as the
        # exact search computes it.
        return self._keys[number], float(self._index.reconstruct(number) @ query[0])

    def remove(self, ids: Iterable[str]) -> None:
        numbers = [self._ids.pop(i) for i in ids if i in self._ids]
        self._remove_numbers(numbers)

    def drop_oldest(self, n: int) -> list[str]:
        oldest = list(islice(self._ids, max(n, 0)))
        self.remove(oldest)
        return oldest

    def _remove_numbers(self, numbers: list[int]) -> None:
        if numbers:
            self._index.remove_ids(np.array(numbers, dtype=np.int64))
            for number in numbers:
                del self._keys[number]

    def vectors_of(self, ids: list[str]) -> tuple[list[str], np.ndarray]:
        held = [i for i in ids if i in self._ids]
        if not held:
            return held, np.zeros((0, self.dimensions), np.float32)
        numbers = np.array([self._ids[i] for i in held], dtype=np.int64)
        return held, self._index.reconstruct_batch(numbers)


def build_ivf(
    faiss: Any,
    dimensions: int,
    ids: list[str],
    read: Callable[[list[str]], tuple[list[str], np.ndarray]],
    *,
    nprobe: int = 16,
    chunk: int = 4096,
) -> IVFIndex | None:
    """An IVF index trained on and holding the vectors of ``ids`` (oldest first), read through
    ``read`` a chunk at a time, so a namespace whose index is being used meanwhile (under a
    lock that ``read`` takes) is copied a chunk at a time rather than whole; ids no longer held
    when their chunk is read are left out. The training sample is drawn with a fixed seed, so the
    same vectors build the same lists. None if forgetting meanwhile left fewer vectors to train
    on than the index has lists."""
    index = IVFIndex(faiss, dimensions, nlist_for(len(ids)), nprobe)
    rng = np.random.default_rng(len(ids))
    size = min(len(ids), TRAIN_POINTS_PER_LIST * index.nlist)
    sample = sorted(rng.choice(len(ids), size=size, replace=False).tolist())
    _, vectors = read([ids[i] for i in sample])
    if len(vectors) < index.nlist:
        return None
    index.train(vectors)
    for start in range(0, len(ids), chunk):
        held, vectors = read(ids[start : start + chunk])
        if held:
            index.add(held, vectors)
    return index
