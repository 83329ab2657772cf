"""The semantic cache's parts: the offline embedder, exact nearest-neighbour search, and the
QQP benchmark's counting (on a small file of its own; the real data is not needed)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from smart_core.cache.embedding import Embedder, HashedNgramEmbedder
from smart_core.cache.vector_index import BruteForceIndex
from smart_core.jobs.cache_bench import bench_qqp, load_qqp


def test_the_offline_embedder_gives_unit_vectors_close_for_paraphrases():
    e = HashedNgramEmbedder()
    assert isinstance(e, Embedder)
    v = e.embed(["How do I reset my password?", "how can I reset my password", "Best pizza?"])
    assert v.shape == (3, e.dimensions) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > 0.7 > 0.3 > sim[0, 2]
    assert np.array_equal(e.embed(["same"]), HashedNgramEmbedder().embed(["same"]))  # no state


def test_brute_force_search_finds_the_exact_nearest():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((500, 32)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    index = BruteForceIndex(32)
    assert index.nearest(data[0]) is None
    index.add([f"id{i}" for i in range(500)], data)
    assert len(index) == 500
    found, similarity = index.nearest(data[123])
    assert found == "id123" and similarity == pytest.approx(1.0, abs=1e-5)
    best, sims = index.nearest_many(data[:10])
    assert list(best) == list(range(10)) and np.allclose(sims, 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="2 ids for 1 vectors"):
        index.add(["a", "b"], data[:1])


def test_the_qqp_bench_counts_hits_and_false_hits(tmp_path: Path):
    pairs = [
        {
            "a": "How do I learn Python quickly?",
            "b": "How do I learn Python quickly",
            "duplicate": True,
        },
        {
            "a": "What is the capital of France?",
            "b": "What is the capital of Spain?",
            "duplicate": False,
        },
        {"a": "Why is the sky blue?", "b": "Completely unrelated words here", "duplicate": False},
    ]
    path = tmp_path / "dev.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(p) + "\n" for p in pairs)
    rows = bench_qqp(load_qqp(path), [0.5, 0.99])
    low, high = rows
    assert low.lookups == 3 and low.duplicates == 1
    assert low.hits == 2 and low.false_hits == 1  # France/Spain is a near miss: a false hit
    assert high.hits <= low.hits
    assert low.to_dict()["false_hit_rate"] == pytest.approx(0.5)


def test_the_qqp_bench_says_why_it_cannot_run_without_the_data(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"shared/data/qqp/dev.jsonl.gz"):
        load_qqp(tmp_path / "missing.jsonl.gz")


def test_the_bounds_choose_the_lowest_threshold_whose_false_hits_fit_epsilon():
    """Lookups whose similarity is a false hit's below 0.9 and a true one's above: with a
    target of 5 %, the bounds (on a uniform 20 % audit) pass over 0.7-0.85, whose false hits
    are a fifth of all lookups, and certify 0.9; when every hit is false, none is certified."""
    from smart_core.jobs.cache_bench import certified_threshold

    rng = np.random.default_rng(3)
    similarity = rng.uniform(0.6, 1.0, 20_000)
    true_hit = similarity >= 0.9
    s, bound = certified_threshold(similarity, true_hit, epsilon=0.05, delta=0.05, audit_share=0.2)
    assert s == 0.9 and bound >= 0.95
    none_true = np.zeros_like(true_hit)
    assert (
        certified_threshold(similarity, none_true, epsilon=0.05, delta=0.05, audit_share=0.2)
        is None
    )


def test_brute_force_search_drops_the_oldest_and_removes_without_losing_vectors():
    """Dropping moves a start offset and the freed rows are reused: ids and vectors stay paired
    through many drops, adds and removals."""
    rng = np.random.default_rng(2)
    data = rng.standard_normal((400, 16)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    index = BruteForceIndex(16)
    held: list[int] = []
    for i in range(400):
        if len(held) >= 50:
            assert index.drop_oldest(1) == [f"id{held.pop(0)}"]
        index.add([f"id{i}"], data[i : i + 1])
        held.append(i)
        if i % 13 == 0:
            index.remove([f"id{held[len(held) // 2]}", "unknown"])
            held.pop(len(held) // 2)
    assert index.ids == [f"id{i}" for i in held]
    assert np.array_equal(index.vectors, data[held])
    for i in held:
        assert index.nearest(data[i])[0] == f"id{i}"
    ids, vectors = index.vectors_of([f"id{held[3]}", "id0", f"id{held[1]}"])
    assert ids == [f"id{held[3]}", f"id{held[1]}"] and np.array_equal(vectors, data[held[3:0:-2]])
