"""`smart bench index`'s job: the cache's own index timed exact and with its IVF switch, the
exact run's answers as the truth."""

from __future__ import annotations

import pytest

from smart_core.jobs.cache_bench import bench_semantic_index

pytest.importorskip("faiss")


def test_the_index_is_timed_exact_and_switched_at_each_size_and_dimension():
    rows = bench_semantic_index((500, 3_000), dimensions=(16, 32), queries=20, threshold=1_000)
    assert [(r.dimensions, r.entries) for r in rows] == [
        (d, n) for d in (16, 32) for n in (500, 3_000) for _ in range(2)
    ]
    names = [r.method for r in rows]
    assert names[:2] == ["SemanticIndex exact", "SemanticIndex exact (ann on)"]  # below it
    assert names[2] == "SemanticIndex exact" and names[3].startswith("SemanticIndex ivf nlist=")
    assert all(r.recall_at_1 == 1.0 for r in rows[:3]) and rows[3].recall_at_1 >= 0.8
    assert all(r.query_ms_p90 >= r.query_ms_median > 0 for r in rows)
