"""Benchmarks of the semantic cache's parts: nearest-neighbour search (numpy brute force against
faiss indexes, and the cache's own index with its switch to IVF off and on) and the offline
embedder on duplicate-question pairs (QQP).

QQP (``../shared/data/qqp/dev.jsonl.gz``, GPTCache's slice of Quora Question Pairs): every
pair's first question is cached, every second question is looked up among all first questions.
A lookup whose nearest entry is at similarity >= s is a hit at s; a hit is true when the entry
is the lookup's very text (cached for another pair: QQP repeats questions), or its own pair's
first question and the pair is labelled duplicate (an answer to the same question); every other
hit counts as false (the labels say nothing of other pairs' questions, so this errs toward
false hits). Any embedder can be measured (:func:`bench_qqp_embedders`, with the time it takes
to embed every question); ``smart bench qqp --embedder`` picks them (jobs/bench_embedders.py).
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..cache.embedding import Embedder, HashedNgramEmbedder

__all__ = [
    "QQP_PATH",
    "EmbedderRun",
    "NearestTiming",
    "ThresholdRow",
    "bench_nearest",
    "bench_qqp",
    "bench_qqp_embedders",
    "bench_semantic_index",
    "certified_threshold",
    "load_qqp",
]

#: Where the development data lives, beside the repository (never copied into it).
QQP_PATH = Path(__file__).resolve().parents[3] / "shared" / "data" / "qqp" / "dev.jsonl.gz"


@dataclass(frozen=True, slots=True)
class NearestTiming:
    method: str
    entries: int
    dimensions: int
    build_seconds: float
    query_ms_median: float
    query_ms_p90: float
    recall_at_1: float
    memory_mb: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _timed(search, queries: np.ndarray) -> tuple[list[int], list[float]]:
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(int(search(q)))
        times.append((time.perf_counter() - t0) * 1000)
    return found, times


def bench_nearest(
    sizes: Sequence[int] = (10_000, 1_000_000),
    *,
    dimensions: int = 256,
    queries: int = 200,
    seed: int = 0,
) -> list[NearestTiming]:
    """One query at a time (as a cache lookup is): numpy's exact product, faiss's exact
    inner-product index, and faiss's approximate indexes (HNSW, IVF), with their recall@1."""
    import faiss

    rng = np.random.default_rng(seed)
    rows: list[NearestTiming] = []
    for n in sizes:
        data = _unit(rng, n, dimensions)
        # Queries near stored entries, as repeated questions are.
        picks = rng.integers(0, n, queries)
        q = data[picks] + 0.3 * _unit(rng, queries, dimensions)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        truth, times = _timed(lambda v, data=data: np.argmax(data @ v), q)
        rows.append(_timing_row("numpy brute force", n, dimensions, 0.0, times, 1.0, data.nbytes))
        candidates = [("faiss flat (exact)", lambda: faiss.IndexFlatIP(dimensions))]
        candidates.append(("faiss HNSW32 ef=64", lambda: _hnsw(faiss, dimensions)))
        candidates.append(("faiss IVF nlist=1024 nprobe=16", lambda: _ivf(faiss, dimensions)))
        for name, make in candidates:
            t0 = time.perf_counter()
            index = make()
            if not index.is_trained:
                index.train(data[: min(n, 50_000)])
            index.add(data)
            build = time.perf_counter() - t0

            def search(v: np.ndarray, index=index) -> int:
                return index.search(v.reshape(1, -1), 1)[1][0, 0]

            found, times = _timed(search, q)
            recall = float(np.mean(np.asarray(found) == np.asarray(truth)))
            rows.append(
                _timing_row(name, n, dimensions, build, times, recall, _index_bytes(faiss, index))
            )
            del index
    return rows


def _hnsw(faiss, d: int):
    index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 64
    return index


def _ivf(faiss, d: int):
    index = faiss.index_factory(d, "IVF1024,Flat", faiss.METRIC_INNER_PRODUCT)
    faiss.extract_index_ivf(index).nprobe = 16
    return index


def _index_bytes(faiss, index) -> int:
    return len(faiss.serialize_index(index))


def _timing_row(name, n, d, build, times, recall, nbytes) -> NearestTiming:
    return NearestTiming(
        name,
        n,
        d,
        build,
        float(np.median(times)),
        float(np.percentile(times, 90)),
        recall,
        nbytes / 1e6,
    )


def bench_semantic_index(
    sizes: Sequence[int] = (10_000, 100_000),
    *,
    dimensions: Sequence[int] = (256, 4096),
    queries: int = 100,
    threshold: int = 20_000,
    seed: int = 0,
) -> list[NearestTiming]:
    """The cache's own index (:class:`~smart_core.cache.semantic_index.SemanticIndex`), filled one
    entry at a time as the cache fills it, with the IVF switch off (exact) and on: ``build``
    is the fill, trainings included (run in the adding thread here, so they are counted); the
    recall is against the exact run's answers, on queries near stored entries."""
    from ..cache.semantic_index import SemanticIndex

    namespace = ("bench", "tenant", "context")
    rng = np.random.default_rng(seed)
    rows: list[NearestTiming] = []
    for d in dimensions:
        for n in sizes:
            data = _unit(rng, n, d)
            q = data[rng.integers(0, n, queries)] + 0.3 * _unit(rng, queries, d)
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            truth: list[int] | None = None
            for ann in (False, True):
                index = SemanticIndex(
                    max_entries=n, ann=ann, ann_threshold=threshold, train_in_background=False
                )
                t0 = time.perf_counter()
                for i in range(n):
                    index.add(namespace, str(i), data[i])
                build = time.perf_counter() - t0
                found, times = _timed(lambda v, index=index: index.nearest(namespace, v)[0], q)
                truth = truth or found
                recall = float(np.mean(np.asarray(found) == np.asarray(truth)))
                state = index.state(namespace)
                name = "SemanticIndex " + (
                    f"ivf nlist={state.lists} nprobe={index.nprobe}"
                    if state.search == "ivf"
                    else f"exact{' (ann on)' if ann else ''}"
                )
                rows.append(_timing_row(name, n, d, build, times, recall, data.nbytes))
                del index
    return rows


# -- QQP ---------------------------------------------------------------------------------------


#: Thresholds the bounds choose among (each a route ``cache:semantic@s`` with its share of delta).
CERTIFY_GRID = (0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98)


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    threshold: float
    lookups: int
    hits: int
    false_hits: int
    duplicates: int
    #: "fixed" (a threshold given, as peers use one) or "bounds" (the lowest threshold whose
    #: lower bound on agreement, from a uniform audit sample, meets 1 - epsilon).
    chosen_by: str = "fixed"
    #: For a threshold the bounds chose: its lower bound on the share of lookups not served a
    #: false hit.
    bound: float | None = None
    #: For a threshold the bounds chose: the target it was chosen for.
    epsilon: float | None = None

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def false_hit_rate(self) -> float:
        """Share of hits that serve the answer to a different question."""
        return self.false_hits / self.hits if self.hits else 0.0

    @property
    def duplicate_recall(self) -> float:
        """Share of duplicate lookups served their pair's answer."""
        return (self.hits - self.false_hits) / self.duplicates if self.duplicates else 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            **asdict(self),
            "hit_rate": self.hit_rate,
            "false_hit_rate": self.false_hit_rate,
            "duplicate_recall": self.duplicate_recall,
            "false_hits_of_lookups": self.false_hits / self.lookups if self.lookups else 0.0,
        }


def load_qqp(path: Path = QQP_PATH, limit: int | None = None) -> list[dict[str, object]]:
    """The pairs of the QQP file; FileNotFoundError naming the path when it is absent."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is absent: the QQP benchmark needs the development data beside the "
            "repository (../shared/data/qqp/dev.jsonl.gz, see ../shared/data/README.md)"
        )
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            pairs.append(json.loads(line))
            if limit is not None and len(pairs) >= limit:
                break
    return pairs


def bench_qqp(
    pairs: list[dict[str, object]],
    thresholds: Sequence[float] = (0.8, 0.9),
    *,
    dimensions: int = 2**12,
    chunk: int = 1000,
    epsilon: float = 0.05,
    delta: float = 0.05,
    audit_share: float = 0.1,
    seed: int = 0,
    embedder: Embedder | None = None,
    epsilons: Sequence[float] | None = None,
) -> list[ThresholdRow]:
    """Hit and false-hit rates of ``embedder`` (default: the offline one) at fixed similarity
    thresholds, and at the threshold the bounds choose (:func:`certified_threshold`) for each
    of ``epsilons`` (default: ``epsilon`` alone), after the fixed rows, when one is certified."""
    cached, looked = _embed_pairs(embedder or HashedNgramEmbedder(dimensions), pairs, chunk)
    return _threshold_rows(
        pairs, cached, looked, thresholds, chunk, epsilons or (epsilon,), delta, audit_share, seed
    )


@dataclass(frozen=True, slots=True)
class EmbedderRun:
    """One embedder's QQP run: its rows, and the wall time spent embedding the questions (the
    nearest-neighbour search and the bounds are not included)."""

    embedder: str
    texts: int
    dimensions: int
    embed_seconds: float
    rows: tuple[ThresholdRow, ...]

    def chosen(self, epsilon: float) -> ThresholdRow | None:
        """The row the bounds chose at ``epsilon``, if one was certified."""
        return next((r for r in self.rows if r.epsilon == epsilon), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder,
            "texts": self.texts,
            "dimensions": self.dimensions,
            "embed_seconds": self.embed_seconds,
            "rows": [r.to_dict() for r in self.rows],
        }


def bench_qqp_embedders(
    pairs: list[dict[str, object]],
    embedders: Mapping[str, Embedder],
    thresholds: Sequence[float] = (0.8, 0.9),
    *,
    epsilons: Sequence[float] = (0.05, 0.10),
    chunk: int = 1000,
    delta: float = 0.05,
    audit_share: float = 0.1,
    seed: int = 0,
) -> list[EmbedderRun]:
    """:func:`bench_qqp` for each embedder, by name, timing the embedding of every question
    (``chunk`` texts per ``embed`` call). The audit sample is the same for every embedder (same
    ``seed``), so equal vectors choose equal thresholds."""
    runs = []
    for name, embedder in embedders.items():
        started = time.perf_counter()
        cached, looked = _embed_pairs(embedder, pairs, chunk)
        seconds = time.perf_counter() - started
        rows = _threshold_rows(
            pairs, cached, looked, thresholds, chunk, epsilons, delta, audit_share, seed
        )
        runs.append(EmbedderRun(name, 2 * len(pairs), cached.shape[1], seconds, tuple(rows)))
    return runs


def _threshold_rows(
    pairs: list[dict[str, object]],
    cached: Any,
    looked: Any,
    thresholds: Sequence[float],
    chunk: int,
    epsilons: Sequence[float],
    delta: float,
    audit_share: float,
    seed: int,
) -> list[ThresholdRow]:
    similarity, true_hit, duplicate = _qqp_lookups(pairs, cached, looked, chunk)
    rows = [_row(s, similarity, true_hit, duplicate) for s in thresholds]
    for eps in epsilons:
        chosen = certified_threshold(
            similarity, true_hit, epsilon=eps, delta=delta, audit_share=audit_share, seed=seed
        )
        if chosen is not None:
            s, bound = chosen
            row = _row(s, similarity, true_hit, duplicate)
            rows.append(replace(row, chosen_by="bounds", bound=bound, epsilon=eps))
    return rows


def certified_threshold(
    similarity: np.ndarray,
    true_hit: np.ndarray,
    *,
    epsilon: float,
    delta: float,
    audit_share: float,
    seed: int = 0,
    grid: Sequence[float] = CERTIFY_GRID,
) -> tuple[float, float] | None:
    """The lowest threshold of ``grid`` whose route is certified, and its lower bound.

    Each threshold ``s`` is the route ``cache:semantic@s``: a lookup agrees with the reference
    unless it is a false hit (a miss is answered by the reference). A uniform sample of
    ``audit_share`` of the lookups is audited, as probes are; each route's anytime lower bound
    at ``delta / len(grid)`` (the union bound, as the policy splits delta over routes) must meet
    ``1 - epsilon``. All bounds hold at once with probability ``1 - delta``, so picking the
    lowest certified one is valid. ``None`` if none is certified.
    """
    from ..stats.confidence import BetaMixtureSequence

    rng = np.random.default_rng(seed)
    audited = rng.random(len(similarity)) < audit_share
    n = int(audited.sum())
    if n == 0:
        return None
    bound_of = BetaMixtureSequence.for_target(epsilon)
    alpha = delta / len(grid)
    for s in sorted(grid):
        false_hit = (similarity >= s) & ~true_hit
        agreed = int((~false_hit & audited).sum())
        lower = bound_of.lower(agreed, n, alpha)
        if lower >= 1.0 - epsilon:
            return s, lower
    return None


def _embed_pairs(embedder: Embedder, pairs: list[dict[str, object]], chunk: int) -> tuple[Any, Any]:
    """The first and the second questions' unit vectors: sparse for the offline embedder
    (whose vectors are mostly zeros), else dense rows from ``chunk`` texts per call."""
    firsts = [str(p["a"]) for p in pairs]
    seconds = [str(p["b"]) for p in pairs]
    if isinstance(embedder, HashedNgramEmbedder):
        return embedder.sparse(firsts), embedder.sparse(seconds)

    def dense(texts: list[str]) -> np.ndarray:
        parts = [embedder.embed(texts[i : i + chunk]) for i in range(0, len(texts), chunk)]
        return np.vstack([np.asarray(p, dtype=np.float32) for p in parts])

    return dense(firsts), dense(seconds)


def _qqp_lookups(
    pairs: list[dict[str, object]], cached: Any, looked: Any, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per lookup (each pair's second question among all first ones): the nearest entry's
    similarity, whether that hit would be true, and whether the pair is a duplicate."""
    duplicate = np.array([bool(p["duplicate"]) for p in pairs])
    nearest = np.empty(len(pairs), dtype=np.int64)
    similarity = np.empty(len(pairs), dtype=np.float32)
    sparse = not isinstance(cached, np.ndarray)
    cached_t = cached.T.tocsc() if sparse else cached.T
    for start in range(0, len(pairs), chunk):
        scores = looked[start : start + chunk] @ cached_t
        if sparse:
            scores = scores.toarray()
        nearest[start : start + chunk] = scores.argmax(axis=1)
        similarity[start : start + chunk] = scores.max(axis=1)
    # A hit answers the lookup's own question when the entry is the lookup's very text (QQP
    # repeats questions across pairs), or its pair's first question (the same text, wherever
    # cached) and the pair is labelled duplicate. Any other hit counts as false: the labels say
    # nothing of other pairs' questions, so this errs toward false hits.
    firsts = [_plain(p["a"]) for p in pairs]
    seconds = [_plain(p["b"]) for p in pairs]
    true_hit = np.array(
        [
            firsts[j] == seconds[i] or (firsts[j] == firsts[i] and bool(duplicate[i]))
            for i, j in enumerate(nearest)
        ]
    )
    return similarity, true_hit, duplicate


def _plain(text: object) -> str:
    return " ".join(str(text).lower().split()).rstrip("?").strip()


def _row(
    s: float, similarity: np.ndarray, true_hit: np.ndarray, duplicate: np.ndarray
) -> ThresholdRow:
    hit = similarity >= s
    return ThresholdRow(
        threshold=s,
        lookups=len(similarity),
        hits=int(hit.sum()),
        false_hits=int((hit & ~true_hit).sum()),
        duplicates=int(duplicate.sum()),
    )
