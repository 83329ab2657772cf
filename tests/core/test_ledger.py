"""Ledger.from_counters: spend, the reference-only estimate, savings and the summary."""

from __future__ import annotations

import math

import pytest

from smart_core import Ledger, MixPolicy, RouteStats
from smart_core import _keys as K

REF = "gpt-4o"
MINI = "gpt-4o-mini"
NANO = "gpt-4.1-nano"


def policy() -> MixPolicy:
    return MixPolicy(
        task="support-triage",
        reference=REF,
        candidates=[MINI, NANO],
        epsilon=0.05,
        delta=0.05,
        prior_costs={REF: 0.004, MINI: 0.0003, NANO: 0.0002},
    )


def counters() -> dict[str, float]:
    """100 requests; the reference answered 40 of them (20 at $0.003, 20 at $0.005)."""
    ref_costs = [0.003] * 20 + [0.005] * 20
    return {
        K.REQUESTS: 100.0,
        K.PROBES: 40.0,
        K.AUDITS: 2.0,
        K.REF_N: 40.0,
        K.REF_COST: sum(ref_costs),
        K.REF_COST_SQ: sum(c * c for c in ref_costs),
        K.SPENT: 0.2,
        K.SPENT_PROBE_CANDIDATES: 0.012,
        K.routed(REF): 40.0,
        K.routed(MINI): 60.0,
        K.probes_of(MINI): 40.0,
        K.agreements(MINI): 39.0,
        K.failures(MINI): 2.0,
        K.fallbacks(MINI): 1.0,
        K.calls(MINI): 100.0,
        K.call_cost(MINI): 0.03,
        K.probes_of(NANO): 10.0,
        K.agreements(NANO): 1.0,
        K.dropped(NANO): 1.0,
    }


def test_reference_estimate_is_exact_cost_plus_mean_times_the_rest():
    """estimate = what the reference actually cost + its mean cost x requests it did not answer;
    the 95 % interval (normal, from the observed variance) contains it and never goes below the
    exact part; savings = estimate / spent, and so do its interval ends."""
    ledger = Ledger.from_counters(counters(), policy())
    exact, mean, others = 0.16, 0.004, 60
    assert ledger.reference_estimate == pytest.approx(exact + mean * others)
    assert ledger.reference_estimate == pytest.approx(0.4)
    var = (20 * 0.003**2 + 20 * 0.005**2) / 40 - mean**2  # 1e-6
    half = 1.96 * math.sqrt(var / 40) * others
    lo, hi = ledger.reference_interval
    assert lo == pytest.approx(0.4 - half)
    assert hi == pytest.approx(0.4 + half)
    assert lo <= ledger.reference_estimate <= hi
    assert lo >= exact
    assert ledger.spent == pytest.approx(0.2)
    assert ledger.savings == pytest.approx(0.4 / 0.2)
    assert ledger.savings_interval == pytest.approx((lo / 0.2, hi / 0.2))


def test_counts_and_route_stats_come_from_the_counters():
    """Requests, probes, audits and each candidate's stats are read from its counters; bounds are
    the policy's bounds for those counts."""
    c = counters()
    p = policy()
    ledger = Ledger.from_counters(c, p)
    assert (ledger.task, ledger.mode, ledger.method) == ("support-triage", "request", "anytime")
    assert (ledger.epsilon, ledger.delta) == (0.05, 0.05)
    assert (ledger.requests, ledger.probes, ledger.audits) == (100, 40, 2)
    assert ledger.probe_candidate_spend == pytest.approx(0.012)
    mini = ledger.routes[MINI]
    assert isinstance(mini, RouteStats)
    assert (mini.requests, mini.probes, mini.agreements) == (60, 40, 39)
    assert (mini.failures, mini.fallbacks, mini.dropped) == (2, 1, False)
    assert mini.mean_cost == pytest.approx(0.0003)
    view = p.view(c)
    assert mini.lower == pytest.approx(view.lower[MINI])
    assert mini.upper == pytest.approx(view.upper[MINI])
    assert 0 < mini.lower < 39 / 40 < mini.upper <= 1
    nano = ledger.routes[NANO]
    assert nano.dropped and (nano.probes, nano.agreements) == (10, 1)
    assert sum(ledger.mix.values()) == pytest.approx(1.0)
    assert ledger.bound >= 1 - 0.05 - 1e-9
    assert ledger.to_dict()["routes"][MINI]["agreements"] == 39


def test_summary_mentions_task_savings_and_every_candidate():
    """The human summary names the task, the savings factor and each candidate (marking the
    dropped one)."""
    text = Ledger.from_counters(counters(), policy()).summary()
    assert "support-triage" in text
    assert "savings 2.00x" in text
    assert "requests 100, probes 40" in text
    for name in (MINI, NANO):
        assert name in text
    nano_line = next(line for line in text.splitlines() if NANO in line and "routed" in line)
    assert "(dropped)" in nano_line
    mini_line = next(line for line in text.splitlines() if MINI in line and "routed" in line)
    assert "39/40 agreed" in mini_line and "(dropped)" not in mini_line


def test_without_reference_observations_the_estimate_uses_the_price_and_a_wide_interval():
    """Before the reference answered anything the estimate falls back to its expected (price)
    cost, and the interval spans zero to twice the estimate."""
    c = {K.REQUESTS: 10.0, K.SPENT: 0.001, K.routed(MINI): 10.0}
    ledger = Ledger.from_counters(c, policy())
    assert ledger.reference_estimate == pytest.approx(10 * 0.004)
    assert ledger.reference_interval == pytest.approx((0.0, 2 * 10 * 0.004))
    assert ledger.savings == pytest.approx(0.04 / 0.001)


def test_nothing_spent_means_savings_of_one():
    """An empty task reports savings 1 (not a division by zero)."""
    ledger = Ledger.from_counters({}, policy())
    assert ledger.spent == 0.0
    assert ledger.savings == 1.0
    assert ledger.savings_interval == (1.0, 1.0)
    assert ledger.requests == 0


def test_summary_says_a_dropped_candidate_in_the_mix_is_only_audited():
    """A candidate dropped from exploration while the mix still routes to it is shown as
    "profiling done; audits only", not as dropped: users read "dropped" as "not used"."""
    c = counters()
    c[K.dropped(MINI)] = 1.0
    ledger = Ledger.from_counters(c, policy())
    assert ledger.mix.get(MINI, 0.0) > 0.0
    text = ledger.summary()
    mini_line = next(line for line in text.splitlines() if MINI in line and "routed" in line)
    assert mini_line.endswith("(profiling done; audits only)")
    nano_line = next(line for line in text.splitlines() if NANO in line and "routed" in line)
    assert nano_line.endswith("(dropped)")
