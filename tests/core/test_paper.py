"""The SMART paper's simulation (``smart bench paper``) run through the real policy."""

from __future__ import annotations

import pytest

from smart_core.jobs.paper import (
    EPSILONS,
    bench_paper,
    geometric_mean,
    oracle_savings,
    simulate_paper,
)
from smart_core.jobs.paper_data import DATASETS, PRICES_PER_1K, PUBLISHED_SAVINGS, REFERENCE


def test_oracle_savings_matches_a_hand_computation():
    """imdb at epsilon 0.2: with true rates the cheapest mix is gpt-3.5-turbo-1106 (0.94) topped
    up with babbage-002 (0.0) to agreement 0.8; savings = gpt-4 cost / that mix's cost."""
    gpt4 = (316 * 0.03 + 1 * 0.06) / 1000
    turbo = (316 * 0.001 + 1 * 0.002) / 1000
    babbage = (309 * 0.0004 + 16 * 0.0004) / 1000
    w = 0.8 / 0.94
    mix = w * turbo + (1 - w) * babbage
    assert oracle_savings("imdb", 0.2) == pytest.approx(gpt4 / mix, rel=1e-9)
    assert oracle_savings("imdb", 0.2) == pytest.approx(32.8966, rel=1e-4)


def test_oracle_savings_grow_with_epsilon():
    """A looser target can only make the oracle mix cheaper."""
    for ds in DATASETS:
        values = [oracle_savings(ds, eps) for eps in EPSILONS]
        assert values == sorted(values)
        assert values[0] >= 1.0


@pytest.mark.slow
def test_sms_spam_simulation_saves_and_keeps_the_guarantee():
    """sms_spam at epsilon 0.1, two seeds: savings > 5 and realized disagreement <= 0.1."""
    for seed in (0, 1):
        run = simulate_paper("sms_spam", 0.1, seed=seed)
        assert run.dataset == "sms_spam" and run.epsilon == 0.1 and run.seed == seed
        assert run.savings > 5
        assert run.savings == pytest.approx(run.reference_cost / run.cost)
        assert run.disagreement <= 0.1
        assert run.probes > 0
        n_items = DATASETS["sms_spam"][0]
        gpt4 = DATASETS["sms_spam"][1][REFERENCE]
        per_item = gpt4[1] * PRICES_PER_1K[REFERENCE][0] + gpt4[2] * PRICES_PER_1K[REFERENCE][1]
        assert run.reference_cost == pytest.approx(n_items * per_item / 1000)


@pytest.mark.slow
def test_simulation_is_reproducible_per_seed():
    """Same seed, same run (the bench's medians depend on it)."""
    assert simulate_paper("sms_spam", 0.2, seed=3) == simulate_paper("sms_spam", 0.2, seed=3)


def test_published_savings_cover_all_fifteen_points():
    """3 datasets x 5 epsilons of published savings, keyed exactly as the bench looks them up."""
    assert set(PUBLISHED_SAVINGS) == {"imdb", "sms_spam", "ag_news"} == set(DATASETS)
    points = [(ds, eps) for ds, row in PUBLISHED_SAVINGS.items() for eps in row]
    assert len(points) == 15
    for row in PUBLISHED_SAVINGS.values():
        assert sorted(row) == pytest.approx(sorted(EPSILONS))
        assert all(v > 1 for v in row.values())
        for eps in EPSILONS:
            assert row.get(eps) is not None  # 0.10 and 0.1 must be the same key


@pytest.mark.slow
def test_bench_paper_rows_aggregate_runs():
    """bench_paper returns one row per point with the oracle and published numbers attached."""
    rows = bench_paper(datasets=["sms_spam"], epsilons=[0.2], seeds=2)
    assert len(rows) == 1
    row = rows[0]
    assert (row.dataset, row.epsilon, row.seeds) == ("sms_spam", 0.2, 2)
    assert row.oracle_savings == pytest.approx(oracle_savings("sms_spam", 0.2))
    assert row.published_savings == PUBLISHED_SAVINGS["sms_spam"][0.2]
    assert 0.0 <= row.violation_rate <= 1.0
    assert row.savings > 1
    assert geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
