"""Ledger.from_counters: spend, the reference-only estimate, savings and the summary."""

from __future__ import annotations

import math

import pytest

from smart_core import Certificate, Ledger, RouteStats
from smart_core.policy import Policy, policy_class
from smart_core.policy import keys as K

REF = "gpt-4o"
MINI = "gpt-4o-mini"
NANO = "gpt-4.1-nano"


def policy(**kw) -> Policy:
    """The policy of the mode ``kw`` asks for (online, or batch with ``batch_size``)."""
    cls = policy_class(batch_size=kw.get("batch_size"), method=kw.get("method", "anytime"))
    return cls(
        task="support-triage",
        reference=REF,
        candidates=[MINI, NANO],
        epsilon=0.05,
        delta=0.05,
        prior_costs={REF: 0.004, MINI: 0.0003, NANO: 0.0002},
        **kw,
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


# -- batch mode: a count against the budget, not an agreement -----------------------------------


def batch_policy(**kw) -> Policy:
    return policy(batch_size=1000, **kw)


def batch_counters() -> dict[str, float]:
    """A finished batch of 1,000: 300 probes (mini agreed 298/300, nano 45/50), then 500 items
    to mini, 14 to nano and the rest to the reference."""
    return {
        K.REQUESTS: 1000.0,
        K.PROBES: 300.0,
        K.routed(REF): 486.0,
        K.routed(MINI): 500.0,
        K.routed(NANO): 14.0,
        K.probes_of(MINI): 300.0,
        K.agreements(MINI): 298.0,
        K.probes_of(NANO): 50.0,
        K.agreements(NANO): 45.0,
    }


def test_batch_ledger_counts_the_differing_answers_it_guarantees_against_the_budget():
    """Batch mode promises a count: at most sum_c min(R_c, G_c) of the batch's answers differ,
    G_c being the bound on differing answers among c's unprobed items. Mini's 500 items are
    covered by its G (33 of them at most), nano's 14 by their number: 47, against a budget of
    0.05 x 1,000 = 50. The policy's bookkeeping "bound" at the end of a batch is 1.0 and must
    not be what the ledger states."""
    p = batch_policy()
    g_mini = p.bound.differing_bounds(298, 300, p.alphas[MINI])[1]
    g_nano = p.bound.differing_bounds(45, 50, p.alphas[NANO])[1]
    assert g_mini < 500 and g_nano > 14  # one saturated candidate, one on free items
    ledger = Ledger.from_counters(batch_counters(), p)
    assert (ledger.batch_size, ledger.budget) == (1000, pytest.approx(50.0))
    assert ledger.routes[MINI].differing_at_most == pytest.approx(g_mini)
    assert ledger.routes[NANO].differing_at_most == pytest.approx(14.0)
    assert ledger.differing_at_most == pytest.approx(g_mini + 14.0)
    assert g_mini + 14 == 47
    assert ledger.headline() == "at most 47 of 1,000 may differ (budget 50)"
    assert ledger.routed == {REF: 486, MINI: 500, NANO: 14}
    doc = ledger.to_dict()
    assert doc["differing_at_most"] == pytest.approx(47.0) and doc["budget"] == 50.0
    assert doc["routes"][MINI]["differing_at_most"] == pytest.approx(g_mini)


def test_batch_summary_states_the_count_not_a_guaranteed_agreement():
    """The summary of a batch says "at most 47 of the batch's 1,000 answers may differ (budget
    50)", where each item went, and each routed candidate's own bound; never "guaranteed
    agreement 1.0000" (the plan's bookkeeping for the items left, none at the end)."""
    text = Ledger.from_counters(batch_counters(), batch_policy()).summary()
    assert "guaranteed agreement" not in text
    assert (
        "guarantee: at most 47 of the batch's 1,000 answers may differ from gpt-4o's "
        "(budget 50), with confidence 95%" in text
    )
    assert "routed: gpt-4o 486 (48.6%), gpt-4o-mini 500 (50.0%), gpt-4.1-nano 14 (1.4%)" in text
    mini_line = next(line for line in text.splitlines() if f"  {MINI}:" in line)
    assert "500 routed (at most 33 of them may differ), 298/300 agreed, bound [0." in mini_line
    nano_line = next(line for line in text.splitlines() if f"  {NANO}:" in line)
    assert "14 routed (at most 14 of them may differ)" in nano_line


def test_batch_summary_midway_counts_the_answers_so_far_and_shows_the_plan():
    """Halfway through a batch the count covers the answers given so far, the budget the whole
    batch, and the mix is shown as the plan for the items not yet decided."""
    c = batch_counters()
    c[K.REQUESTS], c[K.routed(REF)] = 600.0, 86.0
    ledger = Ledger.from_counters(c, batch_policy())
    text = ledger.summary()
    assert "at most 47 of the 600 answers so far may differ from gpt-4o's" in text
    assert "(budget 50 for the batch's 1,000)" in text
    assert "plan for the 400 items not yet decided: " in text
    assert "mix:" not in text


def test_batch_with_a_per_item_bound_states_only_the_budget():
    """With method="clopper-pearson" (replication only) the per-item bound gives no count of
    differing answers: the ledger states the promise itself and no made-up count."""
    ledger = Ledger.from_counters(batch_counters(), batch_policy(method="clopper-pearson"))
    assert ledger.differing_at_most is None
    assert ledger.routes[MINI].differing_at_most is None
    assert "at most 50 of the batch's 1,000 answers may differ from gpt-4o's (budget = " in (
        ledger.summary()
    )


def test_online_summary_keeps_its_guaranteed_agreement():
    """Online the mix in force has a guaranteed agreement, and the summary says so; the batch
    fields stay empty."""
    ledger = Ledger.from_counters(counters(), policy())
    assert "  mix: " in ledger.summary()
    assert f"(guaranteed agreement {ledger.bound:.4f})" in ledger.summary()
    assert (ledger.batch_size, ledger.budget, ledger.differing_at_most) == (None, None, None)
    assert ledger.guarantee().startswith(f"guaranteed agreement {ledger.bound:.4f}")
    assert ledger.headline() == f"guaranteed agreement {ledger.bound:.3f}"


# -- failures are visible ------------------------------------------------------------------------


def test_summary_shows_failures_fallbacks_and_comparator_errors_of_every_route():
    """A candidate that is down never answers, so it has no probes and no routed items: without
    its failures the summary would read "0 routed, 0/0 agreed", as if merely unused. Failures,
    fallbacks, comparator errors (counted as differing), requests skipped while it cooled down
    and the reference's own failures are shown in both modes."""
    c = counters()
    c[K.failures(NANO)] = 40.0
    c[K.compare_errors(MINI)] = 3.0
    c[K.failures(REF)] = 2.0
    c[K.cooled(NANO)] = 7.0
    for ledger in (
        Ledger.from_counters(c, policy()),
        Ledger.from_counters({**batch_counters(), **c}, batch_policy()),
    ):
        text = ledger.summary()
        nano_line = next(line for line in text.splitlines() if f"  {NANO}:" in line)
        assert "failed 40 (fell back 0)" in nano_line
        assert "sent to the reference while cooling down 7" in nano_line
        mini_line = next(line for line in text.splitlines() if f"  {MINI}:" in line)
        assert "failed 2 (fell back 1), comparator errors 3" in mini_line
        assert f"  {REF} (reference): " in text and "failed 2" in text
        assert ledger.routes[MINI].compare_errors == 3
        assert ledger.reference_failures == 2
        assert ledger.to_dict()["routes"][NANO]["failures"] == 40


# -- the certificate -----------------------------------------------------------------------------


def test_certificate_carries_the_batch_statement_fields():
    """A certificate has room for the batch statement (batch size, budget, the count of differing
    answers guaranteed so far); they default to None, as online, and are in its dict."""
    base = dict(
        task="t",
        route=MINI,
        probe=False,
        mix={MINI: 1.0},
        bound=1.0,
        probes=300,
        epsilon=0.05,
        delta=0.05,
        method="anytime",
        mode="batch",
        effective_epsilon=1.0,
    )
    online = Certificate(**base).to_dict()
    assert (online["batch_size"], online["budget"], online["differing_at_most"]) == (
        None,
        None,
        None,
    )
    batch = Certificate(**base, batch_size=1000, budget=50.0, differing_at_most=47.0).to_dict()
    assert (batch["batch_size"], batch["budget"], batch["differing_at_most"]) == (1000, 50.0, 47.0)
    assert "differing_at_most" in (Certificate.__doc__ or "")


def test_a_restarted_candidate_shows_its_restarts_and_its_current_epoch():
    """After drift detection restarts a candidate, the summary says so and gives the probes of
    the epoch its bound counts, beside its all-history counts."""
    from smart_core import SmartConfig
    from smart_core.engine.ledger import Ledger
    from smart_core.policy import OnlineMixPolicy, policy_for

    config = SmartConfig(task="t", epsilon=0.05, reference="gpt-4o", candidates=["gpt-4o-mini"])
    policy = policy_for(config)
    assert isinstance(policy, OnlineMixPolicy) and policy.drift
    counters = {
        K.REQUESTS: 5000.0,
        K.probes_of("gpt-4o-mini"): 900.0,
        K.agreements("gpt-4o-mini"): 850.0,
        K.epoch("gpt-4o-mini"): 1.0,
        K.epoch_probes("gpt-4o-mini", 1): 300.0,
        K.epoch_agreements("gpt-4o-mini", 1): 240.0,
    }
    ledger = Ledger.from_counters(counters, policy)
    stats = ledger.routes["gpt-4o-mini"]
    assert (stats.restarts, stats.epoch_probes, stats.epoch_agreements) == (1, 300, 240)
    assert stats.lower < 0.85  # the bound reads the current epoch (240/300), not 850/900
    assert "restarted once after its agreement dropped, since then 240/300 agreed" in (
        ledger.summary()
    )
