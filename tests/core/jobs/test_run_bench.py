"""``smart bench run``'s timing of `smart run` (smart_core.jobs.run_bench) on a small file."""

from __future__ import annotations

import json

import pytest

from smart_core.jobs.run_bench import (
    CANDIDATES,
    REFERENCE,
    SeededModels,
    bench_run,
    per_item_ratio,
    time_run,
)


def test_a_timed_run_answers_every_item_once(tmp_path):
    """200 items through run_batch: every item answered, none failed, the output has one line
    per item, and the timing fields are consistent with each other."""
    point = time_run(200, tmp_path)
    assert point.items == 200
    assert point.answered == 200 and point.failed == 0
    assert point.seconds > 0
    assert point.us_per_item == pytest.approx(point.seconds / 200 * 1e6)
    assert point.items_per_second == pytest.approx(200 / point.seconds)
    assert 0 < point.probes <= 200
    assert point.savings > 0
    lines = [json.loads(x) for x in (tmp_path / "out-200.jsonl").read_text().splitlines()]
    assert len(lines) == 200 and len({x["id"] for x in lines}) == 200
    doc = point.to_dict()
    assert {"items", "seconds", "us_per_item", "items_per_second", "answered"} <= set(doc)


def test_bench_run_reports_each_size_smallest_first(tmp_path):
    """Sizes come back sorted, each in its own files, and the ratio is per-item time at the
    largest over the smallest."""
    points = bench_run([60, 30], workdir=tmp_path)
    assert [p.items for p in points] == [30, 60]
    assert all(p.answered == p.items for p in points)
    assert per_item_ratio(points) == pytest.approx(points[1].us_per_item / points[0].us_per_item)
    assert (tmp_path / "n30" / "out-30.jsonl").is_file()


async def test_seeded_models_answer_from_the_table():
    """The reference answers the table's label; each candidate differs from it on about its
    configured share of items; the same seed gives the same table."""
    models = SeededModels(4000, seed=3)
    assert models.table == SeededModels(4000, seed=3).table
    truth = models.table[REFERENCE]
    for model, wrong in CANDIDATES.items():
        share = sum(a != t for a, t in zip(models.table[model], truth, strict=True)) / len(truth)
        assert abs(share - wrong) < 0.015, (model, share)
    answer = await models.endpoints()[REFERENCE]("Label text of item 17")
    assert answer.text == truth[17] and models.calls == 1
