"""Where a request's nearest earlier request is found: one vector index per namespace.

A namespace is (task, scope, context): the scope is the tenant (and the user, for per-user
answers), the context the hash of everything in the request but the text compared by similarity
(the system message, earlier turns, tools, parameters). So a similar question is looked for only
among requests of the same tenant (and user) asked in the very same context: a system message
naming its user keeps each user's requests apart even when a tenant shares answers, and no
vector of one tenant is ever compared with another's.

A namespace is searched exactly (numpy brute force) until it grows past ``ann_threshold``
entries; then, with faiss installed, by an IVF index trained on its vectors (:mod:`.ivf_index`),
re-trained each time as many entries have been added as it was trained on (the lists follow
the namespace as it doubles, or as its content is replaced once full). Why 20,000: below ~10k
entries the exact product is as fast as IVF (0.24 ms at 10k, 256 dimensions) and exact; past
it its cost grows with the entries (~25 ms a lookup at 20k and the offline embedder's 4,096
dimensions, ~130 ms at 100k) while IVF's stays near 1 ms, and 20k vectors give each of its
~512 lists the 39 training points k-means wants. Training runs on a background thread (seconds
at 4,096 dimensions) while lookups go on exactly; the trained index is brought up to date with
what was added and forgotten meanwhile, then takes over. A namespace thinned below half the
threshold goes back to exact search (half, so one hovering at the threshold does not retrain
again and again).

Only adding starts a training, so an index nothing is added to (batch mode's frozen view,
docs/guarantee.md "The answer cache") keeps its search, and each item's would-be answer stays
fixed.

The vectors live in this process (the answers stay in the store, with their expiry); an entry
the store has dropped is a miss when it is found, and is forgotten then.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ivf_index import IVFIndex, build_ivf, load_faiss
from .vector_index import BruteForceIndex, VectorIndex

__all__ = ["IndexState", "SemanticIndex"]

_log = logging.getLogger("smart_core")

Namespace = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class IndexState:
    """How one namespace is searched: ``"exact"`` or ``"ivf"`` (with its lists, and the
    entries it was trained on)."""

    search: str
    entries: int
    lists: int
    trained_on: int


@dataclass(eq=False)
class _Space:
    """One namespace's index and when it is next due for (re)training."""

    index: VectorIndex
    keys: set[str] = field(default_factory=set)
    #: Entries the IVF index was last trained on (0: never; due once past the threshold).
    trained_on: int = 0
    added_since: int = 0
    training: bool = False


class SemanticIndex:
    """Nearest-neighbour search per namespace, at most ``max_entries`` vectors each (the oldest
    are forgotten first); safe to use from several threads.

    Exact below ``ann_threshold`` entries; above, approximate through faiss IVF when ``ann``
    says so: None uses faiss if it is installed, False never, True requires it. ``nprobe``
    lists are searched per lookup. ``train_in_background`` False trains in the adding thread
    (deterministic, for tests)."""

    def __init__(
        self,
        max_entries: int = 100_000,
        *,
        ann: bool | None = None,
        ann_threshold: int = 20_000,
        nprobe: int = 16,
        train_in_background: bool = True,
    ) -> None:
        self.max_entries = max_entries
        self.ann_threshold = ann_threshold
        self.nprobe = nprobe
        self.train_in_background = train_in_background
        self._faiss: Any = None if ann is False else load_faiss()
        if ann is True and self._faiss is None:
            raise ImportError(
                "SemanticIndex(ann=True) needs faiss: pip install 'smart-llm[ann]' "
                "(or pass ann=None to search exactly when it is missing)"
            )
        self._lock = threading.Lock()
        self._spaces: dict[Namespace, _Space] = {}
        self._trainers: list[threading.Thread] = []

    @property
    def ann(self) -> bool:
        """Whether large namespaces are searched through faiss IVF."""
        return self._faiss is not None

    def add(self, namespace: Namespace, key: str, vector: np.ndarray) -> None:
        """Remember that the entry ``key`` answered a request whose text embeds to ``vector``."""
        vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        with self._lock:
            space = self._spaces.get(namespace)
            if space is None or space.index.dimensions != vector.shape[1]:
                space = self._spaces[namespace] = _Space(BruteForceIndex(vector.shape[1]))
            if key in space.keys:
                return
            if len(space.index) >= self.max_entries:
                self._drop_oldest(space, len(space.index) - self.max_entries + 1)
            space.index.add([key], vector)
            space.keys.add(key)
            space.added_since += 1
            due = self._training_due(space)
            if due is not None:
                space.training = True
        if due is not None:
            self._start_training(namespace, space, due)

    def nearest(self, namespace: Namespace, vector: np.ndarray) -> tuple[str, float] | None:
        """The key of the closest earlier request in ``namespace`` and its cosine similarity."""
        with self._lock:
            space = self._spaces.get(namespace)
            if space is None or space.index.dimensions != np.asarray(vector).size:
                return None
            return space.index.nearest(vector)

    def forget(self, namespace: Namespace, key: str) -> None:
        """Drop ``key`` (its entry expired or was evicted from the store)."""
        with self._lock:
            space = self._spaces.get(namespace)
            if space is None or key not in space.keys:
                return
            space.index.remove([key])
            space.keys.discard(key)
            self._maybe_back_to_exact(space)

    def state(self, namespace: Namespace) -> IndexState | None:
        """How ``namespace`` is searched now (None: nothing was added to it)."""
        with self._lock:
            space = self._spaces.get(namespace)
            if space is None:
                return None
            ivf = space.index if isinstance(space.index, IVFIndex) else None
            return IndexState(
                search="ivf" if ivf else "exact",
                entries=len(space.index),
                lists=ivf.nlist if ivf else 0,
                trained_on=space.trained_on if ivf else 0,
            )

    def wait_for_training(self, timeout: float | None = None) -> None:
        """Return once the trainings started so far have ended (for tests and benchmarks)."""
        for thread in list(self._trainers):
            thread.join(timeout)

    def _drop_oldest(self, space: _Space, n: int) -> None:
        space.keys.difference_update(space.index.drop_oldest(n))
        self._maybe_back_to_exact(space)

    def _maybe_back_to_exact(self, space: _Space) -> None:
        if isinstance(space.index, IVFIndex) and len(space.index) < self.ann_threshold // 2:
            exact = BruteForceIndex(space.index.dimensions)
            ids, vectors = space.index.vectors_of(space.index.ids)
            exact.add(ids, vectors)
            space.index, space.trained_on, space.added_since = exact, 0, 0

    def _training_due(self, space: _Space) -> list[str] | None:
        """The ids to train on, oldest first, if ``space`` is due for an IVF (re)training."""
        if self._faiss is None or space.training or len(space.index) <= self.ann_threshold:
            return None
        if space.added_since < space.trained_on:
            return None
        space.trained_on, space.added_since = len(space.index), 0
        return space.index.ids

    def _start_training(self, namespace: Namespace, space: _Space, ids: list[str]) -> None:
        if not self.train_in_background:
            self._train(namespace, space, ids)
            return
        thread = threading.Thread(
            target=self._train, args=(namespace, space, ids), name="smart-ivf-train", daemon=True
        )
        self._trainers = [t for t in self._trainers if t.is_alive()] + [thread]
        thread.start()

    def _train(self, namespace: Namespace, space: _Space, ids: list[str]) -> None:
        """Build an IVF index of ``ids`` outside the lock (reading vectors a chunk at a time
        under it), then, under it, bring it up to date and let it take over."""

        def read(chunk: list[str]) -> tuple[list[str], np.ndarray]:
            with self._lock:
                return space.index.vectors_of(chunk)

        try:
            built = build_ivf(self._faiss, space.index.dimensions, ids, read, nprobe=self.nprobe)
        except Exception as exc:  # a failed training leaves the namespace on its search
            _log.warning("semantic index: IVF training failed (%s); searching as before", exc)
            built = None
        with self._lock:
            space.training = False
            if built is None or self._spaces.get(namespace) is not space:
                return  # replaced meanwhile (new dimensions): the built index is of no use
            if len(space.index) < self.ann_threshold // 2:
                return
            current = space.index.ids
            built.remove(set(built.ids) - space.keys)
            held = set(built.ids)
            # Added meanwhile, so newer than every built id: appended, the age order holds.
            # (A key names one request text, so a key forgotten and re-added meanwhile has the
            # same vector as the one built.)
            added = [k for k in current if k not in held]
            if added:
                built.add(*space.index.vectors_of(added))
            space.index = built
