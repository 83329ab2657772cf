"""The semantic index per namespace: exact below its threshold, faiss IVF above (recall against
the exact search, forgetting, dropping the oldest, retraining as it grows, several threads), and
exact search when faiss is not there. Small thresholds keep it fast."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from smart_core.cache import semantic_index
from smart_core.cache.ivf_index import nlist_for
from smart_core.cache.semantic_index import SemanticIndex
from smart_core.cache.vector_index import BruteForceIndex

pytest.importorskip("faiss")

NS = ("task", "tenant", "context")
DIMS = 64


def clustered(n: int, seed: int = 0, clusters: int = 40) -> np.ndarray:
    """Unit vectors around a few centres, as paraphrases of a few questions are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIMS)).astype(np.float32)
    data = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, DIMS))
    return unit(data)


def unit(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data, dtype=np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def near(data: np.ndarray, seed: int, noise: float = 0.05) -> np.ndarray:
    """Near-duplicates of ``data``'s rows."""
    rng = np.random.default_rng(seed)
    return unit(data + noise * rng.standard_normal(data.shape))


def filled(data: np.ndarray, **options) -> SemanticIndex:
    index = SemanticIndex(ann_threshold=2_000, train_in_background=False, **options)
    for i, v in enumerate(data):
        index.add(NS, f"k{i}", v)
    return index


def exact_answers(data: np.ndarray, queries: np.ndarray, keys: list[str] | None = None):
    exact = BruteForceIndex(DIMS)
    exact.add(keys or [f"k{i}" for i in range(len(data))], data)
    return [exact.nearest(q) for q in queries]


def test_below_the_threshold_the_search_is_the_exact_one():
    data = clustered(1_500)
    index = filled(data, ann=True)
    assert index.state(NS).search == "exact" and index.state(NS).entries == 1_500
    queries = near(data[:300], seed=1, noise=0.3)
    assert [index.nearest(NS, q) for q in queries] == exact_answers(data, queries)


def test_above_the_threshold_ivf_finds_the_exact_nearest_for_near_duplicates():
    data = clustered(6_000)
    index = filled(data, ann=True)
    state = index.state(NS)
    assert state.search == "ivf" and state.entries == 6_000 and state.lists > 1
    queries = near(data[::10], seed=2)
    found = [index.nearest(NS, q) for q in queries]
    expected = exact_answers(data, queries)
    recall = np.mean([f[0] == e[0] for f, e in zip(found, expected, strict=True)])
    assert recall >= 0.95
    for (key, similarity), q in zip(found, queries, strict=True):  # the found entry's cosine
        assert similarity == pytest.approx(float(data[int(key[1:])] @ q), abs=1e-5)


def test_forgotten_and_dropped_entries_are_never_found_again():
    data = clustered(6_000, seed=3)
    index = filled(data, ann=True, max_entries=5_000)  # the first 1,000 dropped as it filled
    assert index.state(NS).search == "ivf" and index.state(NS).entries == 5_000
    forgotten = [f"k{i}" for i in range(1_000, 6_000, 7)]
    for key in forgotten:
        index.forget(NS, key)
    gone = {f"k{i}" for i in range(1_000)} | set(forgotten)
    for i in [*range(0, 1_000, 5), *range(1_000, 6_000, 7)]:  # their own vectors as queries
        found = index.nearest(NS, data[i])
        assert found is not None and found[0] not in gone
    kept = [i for i in range(1_000, 6_000) if f"k{i}" not in gone]
    hits = np.mean([index.nearest(NS, data[i])[0] == f"k{i}" for i in kept[::10]])
    assert hits >= 0.95
    index.add(NS, "k2500", data[2_500])  # a dropped entry's request asked again: found again
    assert index.nearest(NS, data[2_500])[0] == "k2500"


def test_the_index_is_retrained_as_the_namespace_doubles():
    data = clustered(8_500, seed=4)
    index = SemanticIndex(ann=True, ann_threshold=2_000, train_in_background=False)
    for i, v in enumerate(data[:2_001]):
        index.add(NS, f"k{i}", v)
    first = index.state(NS)
    assert first.search == "ivf" and first.trained_on == 2_001
    assert first.lists == nlist_for(2_001)
    for i in range(2_001, 4_001):
        index.add(NS, f"k{i}", data[i])
    assert index.state(NS).trained_on == 2_001  # not yet: 2,000 added since, 2,001 needed
    index.add(NS, "k4001", data[4_001])
    second = index.state(NS)
    assert second.trained_on == 4_002 and second.lists == nlist_for(4_002) > first.lists
    queries = near(data[:4_002:8], seed=5)
    found = [index.nearest(NS, q)[0] for q in queries]
    expected = [e[0] for e in exact_answers(data[:4_002], queries)]
    assert np.mean(np.array(found) == np.array(expected)) >= 0.95


def test_a_namespace_thinned_below_half_the_threshold_is_searched_exactly_again():
    data = clustered(2_500, seed=6)
    index = filled(data, ann=True)
    assert index.state(NS).search == "ivf"
    for i in range(1_600):
        index.forget(NS, f"k{i}")
    assert index.state(NS).search == "exact" and index.state(NS).entries == 900
    keys = [f"k{i}" for i in range(1_600, 2_500)]
    queries = near(data[1_600:], seed=7, noise=0.3)
    assert [index.nearest(NS, q) for q in queries] == exact_answers(data[1_600:], queries, keys)


def test_several_threads_add_and_look_up_while_it_trains_in_the_background():
    data = clustered(8_000, seed=8)
    index = SemanticIndex(ann=True, ann_threshold=2_000)  # trainings on a background thread
    errors: list[BaseException] = []

    def work(part: int) -> None:
        try:
            for i in range(part, len(data), 4):
                index.add(NS, f"k{i}", data[i])
                if i % 3 == 0:
                    index.nearest(NS, data[i])
                if i % 97 == 0:
                    index.forget(NS, f"k{i}")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    index.wait_for_training()
    assert errors == []
    forgotten = {f"k{i}" for i in range(0, len(data), 97)}
    state = index.state(NS)
    assert state.search == "ivf" and state.entries == len(data) - len(forgotten)
    for i in range(0, len(data), 97):
        assert index.nearest(NS, data[i])[0] not in forgotten
    kept = [i for i in range(len(data)) if i % 97]
    hits = np.mean([index.nearest(NS, data[i])[0] == f"k{i}" for i in kept[::10]])
    assert hits >= 0.95


def test_without_faiss_every_namespace_is_searched_exactly(monkeypatch: pytest.MonkeyPatch):
    data = clustered(3_000, seed=9)
    queries = near(data[:200], seed=10, noise=0.3)
    expected = exact_answers(data, queries)
    off = filled(data, ann=False)
    assert not off.ann and off.state(NS).search == "exact"
    assert [off.nearest(NS, q) for q in queries] == expected

    monkeypatch.setattr(semantic_index, "load_faiss", lambda: None)  # faiss-cpu not installed
    missing = filled(data)
    assert not missing.ann and missing.state(NS).search == "exact"
    assert [missing.nearest(NS, q) for q in queries] == expected
    with pytest.raises(ImportError, match=r"pip install 'smart-llm\[ann\]'"):
        SemanticIndex(ann=True)


def test_namespaces_are_searched_apart_and_a_new_dimension_starts_afresh():
    data = clustered(2_500, seed=11)
    index = filled(data, ann=True)
    other = ("task", "other tenant", "context")
    assert index.nearest(other, data[0]) is None
    index.add(other, "mine", data[0])
    assert index.nearest(other, data[1])[0] == "mine"
    assert index.state(NS).entries == 2_500
    index.add(NS, "wide", unit(np.ones((1, 2 * DIMS))))
    assert index.state(NS).search == "exact" and index.state(NS).entries == 1
