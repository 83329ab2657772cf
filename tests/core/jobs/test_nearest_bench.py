"""`smart bench nn`'s job: every method timed on the same queries, numpy's exact answers as the
truth the approximate indexes' recall is read against."""

from __future__ import annotations

from smart_core.jobs.cache_bench import bench_nearest


def test_each_method_is_timed_at_each_size_with_numpy_as_the_truth():
    rows = bench_nearest((1_500, 3_000), dimensions=32, queries=25, seed=3)
    assert [r.entries for r in rows] == [1_500] * 4 + [3_000] * 4
    assert len({r.method for r in rows}) == 4
    for r in rows:
        assert r.dimensions == 32 and r.memory_mb > 0 and r.query_ms_median > 0
    # The exact methods find numpy's answer every time; the approximate ones most of the time.
    exact = [r for r in rows if r.method.startswith(("numpy", "faiss flat"))]
    assert len(exact) == 4 and all(r.recall_at_1 == 1.0 for r in exact)
    assert all(r.recall_at_1 >= 0.8 for r in rows)
