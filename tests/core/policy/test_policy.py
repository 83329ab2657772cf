"""The policies (online mix, batch plan, per-item batch budget): guarantees and behaviour of the
stateless counters -> view/decision policy of each mode.

The simulations drive the real policy with a plain dict of counters, exactly as
``smart_core.jobs.paper`` does: the policy decides, its increments are applied, and probes draw each
live candidate's agreement from a Bernoulli law with a known true rate (recorded through
``probe_outcome``, as the router does).
"""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from smart_core.policy import (
    BatchBudgetPolicy,
    BatchPlanPolicy,
    OnlineMixPolicy,
    Policy,
    PolicyView,
    TaskState,
    policy_class,
    probe_outcome,
    split_delta,
)
from smart_core.policy import keys as K
from smart_core.policy.batch import _lookaheads
from smart_core.policy.batch_budget import realized_budget

REF = "gpt-4o"
MINI = "gpt-4o-mini"
NANO = "gpt-4.1-nano"
HAIKU = "claude-3-5-haiku"

#: USD per call of 1,000 input + 100 output tokens at list prices.
COSTS = {REF: 0.0035, MINI: 0.00021, NANO: 0.00014, HAIKU: 0.0012}


def make_policy(
    candidates, *, epsilon=0.05, delta=0.05, batch_size=None, method="anytime", **kw
) -> Policy:
    """The policy of the mode ``batch_size`` and ``method`` ask for (as ``policy_for`` picks it)."""
    cls = policy_class(batch_size=batch_size, method=method)
    if batch_size is not None:
        kw["batch_size"] = batch_size
    return cls(
        task="t",
        reference=REF,
        candidates=list(candidates),
        epsilon=epsilon,
        delta=delta,
        prior_costs=COSTS,
        method=method,
        **kw,
    )


def probed_counters(probes: float, agreements: float, candidates) -> dict[str, float]:
    """Counters of a batch whose every item so far was a probe comparing all ``candidates``,
    each agreeing ``agreements`` times."""
    counters = {K.REQUESTS: probes, K.PROBES: probes, K.routed(REF): probes}
    for c in candidates:
        counters[K.probes_of(c)] = probes
        counters[K.agreements(c)] = agreements
    return counters


@dataclass
class Trace:
    """What one simulated run did, step by step."""

    counters: dict[str, float]
    routes: list[str] = field(default_factory=list)
    probes: list[bool] = field(default_factory=list)
    probe_models: list[tuple[str, ...]] = field(default_factory=list)
    bounds: list[float] = field(default_factory=list)
    lowers: list[dict[str, float]] = field(default_factory=list)
    effective: list[float] = field(default_factory=list)
    dropped_at: dict[str, int] = field(default_factory=dict)  # step whose decision dropped it
    differing: int = 0


def simulate(
    policy: Policy,
    rates: Mapping[str, float],
    n: int,
    *,
    seed: int = 0,
    check=None,
) -> Trace:
    """Serve ``n`` requests; a fresh view whenever the counters the view reads have changed.

    ``check(view, decision, counters)`` (optional) is called after each decision is applied.
    """
    rng = random.Random(seed)
    counters: dict[str, float] = defaultdict(float)
    trace = Trace(counters)
    cands = policy.candidates
    view: PolicyView | None = None
    key = None
    for _ in range(n):
        now = tuple(
            (counters[K.probes_of(c)], counters[K.dropped(c)], counters[K.routed(c)]) for c in cands
        )
        if view is None or now != key:
            view, key = policy.view(counters), now
        decision = policy.decide_from(view, counters, rng)
        for k, v in decision.increments.items():
            counters[k] += v
        for c in cands:
            if K.dropped(c) in decision.increments:
                trace.dropped_at.setdefault(c, len(trace.routes))
        route = decision.route
        counters[K.calls(route)] += 1
        counters[K.call_cost(route)] += COSTS[route]
        for c in decision.probe_models:
            counters[K.calls(c)] += 1
            counters[K.call_cost(c)] += COSTS[c]
            for k, v in probe_outcome(decision, c, rng.random() < rates[c]).items():
                counters[k] += v
        if route != REF and rng.random() >= rates[route]:
            trace.differing += 1
        trace.routes.append(route)
        trace.probes.append(decision.probe)
        trace.probe_models.append(decision.probe_models)
        trace.bounds.append(view.bound)
        trace.lowers.append(dict(view.lower))
        trace.effective.append(view.effective_epsilon)
        if check is not None:
            check(view, decision, counters)
    return trace


# -- request mode before any evidence ---------------------------------------------------------


def test_request_mode_before_any_probe_keeps_the_reference_share_and_probes_every_candidate():
    """With no probes yet the mix must already meet 1 - epsilon and put >= 1 - epsilon on the
    reference; every reference decision is a probe of all (live) candidates, and a decision routed
    elsewhere is not a probe."""
    eps = 0.05
    policy = make_policy([MINI, NANO, HAIKU], epsilon=eps)
    view = policy.view({})
    assert isinstance(policy, OnlineMixPolicy) and policy.mode == "request"
    assert view.bound >= 1 - eps - 1e-12
    assert view.weights[0] >= 1 - eps - 1e-12
    assert view.routes[0] == REF
    assert math.isclose(sum(view.weights), 1.0, abs_tol=1e-9)
    assert set(view.live) == {MINI, NANO, HAIKU}
    assert all(view.lower[c] == 0.0 for c in (MINI, NANO, HAIKU))

    rng = random.Random(7)
    seen_ref = 0
    for _ in range(300):
        d = policy.decide_from(view, {}, rng)
        if d.route == REF:
            seen_ref += 1
            assert d.probe
            assert set(d.probe_models) == {MINI, NANO, HAIKU}
            assert d.increments[K.PROBES] == 1.0
        else:
            assert not d.probe and d.probe_models == ()
            assert K.PROBES not in d.increments
        assert d.increments[K.REQUESTS] == 1.0
        assert d.increments[K.routed(d.route)] == 1.0
        assert d.certificate.bound >= 1 - eps - 1e-12
    assert seen_ref >= 0.9 * 300


# -- online stream ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def online_trace() -> Trace:
    """4,000 requests: a good candidate (0.97 agreement) and a useless one (0.0)."""
    policy = make_policy([MINI, NANO], epsilon=0.05)
    return simulate(policy, {MINI: 0.97, NANO: 0.0}, 4000, seed=3)


def test_online_good_candidate_ends_up_carrying_most_traffic(online_trace):
    """A candidate at 0.97 agreement (epsilon 0.05) must take over most requests after a few
    thousand: profiling has to end and the LP has to put it in the mix."""
    last = online_trace.routes[-1000:]
    assert last.count(MINI) / len(last) >= 0.65
    assert online_trace.routes.count(MINI) / len(online_trace.routes) >= 0.5


def test_online_every_view_guarantees_the_target(online_trace):
    """The mix's guaranteed agreement is >= 1 - epsilon in every view, from the first request."""
    assert min(online_trace.bounds) >= 1 - 0.05 - 1e-9
    assert all(e == 0.05 for e in online_trace.effective)  # no slack in request mode


def test_online_probe_share_falls_over_time(online_trace):
    """Probing fades out as the bounds tighten: far fewer probes late than early."""
    probes = online_trace.probes
    early = sum(probes[:500]) / 500
    late = sum(probes[-1000:]) / 1000
    assert early >= 0.3
    assert late <= 0.6 * early


def test_online_useless_candidate_is_dropped_fast_and_never_probed_again(online_trace):
    """A candidate that never agrees is marked dropped within ~30 probes and no later decision
    probes it (the good candidate keeps being probed meanwhile)."""
    counters = online_trace.counters
    assert counters[K.dropped(NANO)] >= 1
    assert counters[K.probes_of(NANO)] <= 30
    step = online_trace.dropped_at[NANO]
    probed_before = sum(NANO in models for models in online_trace.probe_models[: step + 1])
    assert probed_before == counters[K.probes_of(NANO)] <= 30
    # The dropping decision itself may still probe it; none after it does.
    later = online_trace.probe_models[step + 1 :]
    assert all(NANO not in models for models in later)
    assert any(MINI in models for models in later)
    assert MINI not in online_trace.dropped_at
    assert online_trace.routes.count(NANO) <= 0.06 * len(online_trace.routes)


def test_dropped_candidate_is_not_live_in_the_view():
    """A ``dropped:`` counter removes the candidate from the live set (so it is never probed),
    while its bound is still reported."""
    policy = make_policy([MINI, NANO])
    counters = {K.probes_of(NANO): 10.0, K.agreements(NANO): 0.0, K.dropped(NANO): 1.0}
    view = policy.view(counters)
    assert NANO not in view.live and MINI in view.live
    assert NANO in view.lower
    d = policy.decide_from(view, counters, random.Random(0))
    assert NANO not in d.probe_models


# -- batch mode -------------------------------------------------------------------------------


def test_batch_reference_only_probes_leave_slack_in_effective_epsilon():
    """In batch mode, items answered by the reference use no budget, so the remaining items may
    differ more often: effective_epsilon = epsilon * N / (N - answered). The finite-population
    bound covers the batch's own answers, so the whole epsilon * N is the budget."""
    n, eps = 1000, 0.05
    policy = make_policy([MINI], epsilon=eps, batch_size=n)
    assert isinstance(policy, BatchPlanPolicy) and policy.mode == "batch"
    assert policy.realization_delta == 0.0
    assert policy.view({}).effective_epsilon == pytest.approx(eps)
    counters = probed_counters(200.0, 180.0, [MINI])
    view = policy.view(counters)
    assert view.effective_epsilon == pytest.approx(eps * n / (n - 200))
    assert view.budget_left == pytest.approx(eps * n)
    assert view.bound >= 1 - view.effective_epsilon - 1e-9


def test_batch_clopper_pearson_keeps_a_margin_for_the_realized_share():
    """A per-item bound (the paper's rule) says nothing about the batch's own answers, so part of
    delta and a Poisson margin below epsilon * N cover their chance fluctuation."""
    n, eps = 1000, 0.05
    policy = make_policy([MINI], epsilon=eps, batch_size=n, method="clopper-pearson")
    assert isinstance(policy, BatchBudgetPolicy) and policy.mode == "batch"
    budget = realized_budget(eps * n, policy.realization_delta)
    assert 0 < budget < eps * n
    assert policy.view({}).effective_epsilon == pytest.approx(budget / n)


def test_batch_routed_items_use_up_the_budget():
    """Each candidate's routed items are charged ``min(R_c, G_c)``: in full while they are fewer
    than the bound on its unprobed differing answers, at that bound once they are more."""
    n, eps = 1000, 0.05
    policy = make_policy([MINI], epsilon=eps, batch_size=n)
    base = {K.REQUESTS: 300.0, K.probes_of(MINI): 200.0, K.agreements(MINI): 198.0}
    view = policy.view({**base, K.routed(MINI): 30.0})
    g = policy.bound.differing_bounds(198, 200, policy.alphas[MINI])[1]
    assert 30 < g < eps * n
    assert view.budget_left == pytest.approx(eps * n - 30.0)
    assert view.effective_epsilon == pytest.approx(view.budget_left / (n - 300))
    view = policy.view({**base, K.routed(MINI): 100.0})
    assert view.budget_left == pytest.approx(eps * n - g)


def test_batch_check_counts_each_candidate_at_most_its_unprobed_differing_bound():
    """Routing to a candidate is allowed while, over candidates, ``min(R_c, G_c)`` stays within
    epsilon * N, ``G_c`` being the bound on differing answers among its unprobed items: early
    items count in full (R_c small), and once G_c fits the budget every item may go."""
    n, eps = 1000, 0.05
    policy = make_policy([MINI], epsilon=eps, batch_size=n)
    bound = policy.bound
    base = {K.probes_of(MINI): 100.0, K.agreements(MINI): 99.0}
    lower = {REF: 1.0, MINI: bound.lower(99, 100, policy.alphas[MINI])}
    g = bound.differing_bounds(99, 100, policy.alphas[MINI])[1]
    assert g > eps * n  # 100 probes cannot yet certify the 900 unprobed items
    assert policy._fits_budget({**base, K.routed(MINI): 49.0}, lower, MINI)
    assert not policy._fits_budget({**base, K.routed(MINI): 50.0}, lower, MINI)
    sure = {K.probes_of(MINI): 400.0, K.agreements(MINI): 400.0}
    lower_sure = {REF: 1.0, MINI: bound.lower(400, 400, policy.alphas[MINI])}
    assert bound.differing_bounds(400, 400, policy.alphas[MINI])[1] <= eps * n
    assert policy._fits_budget({**sure, K.routed(MINI): 599.0}, lower_sure, MINI)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rates", "seed", "min_routed"),
    [
        # A candidate that can carry the batch: most items are routed to it.
        ({MINI: 0.97}, 0, 600),
        ({MINI: 0.97}, 1, 600),
        # None can within 2,000 items: the budget goes on free items.
        ({MINI: 0.93, NANO: 0.5}, 2, 90),
        ({MINI: 0.93, NANO: 0.5}, 3, 90),
    ],
)
def test_batch_budget_is_never_overspent_and_realized_disagreement_stays_below_epsilon(
    rates, seed, min_routed
):
    """Hard budget check over a 2,000-item batch: whenever an item is routed, the bound on the
    differing answers it may bring, ``sum_c min(routed_c, G_c)`` at the counters of the decision
    (this item included, ``G_c`` the bound on differing answers among ``c``'s unprobed items), is
    within ``epsilon * N``; after the last routed item it stays so at the end of the batch; and
    the realized share of differing answers is <= epsilon."""
    n, eps = 2000, 0.05
    policy = make_policy(list(rates), epsilon=eps, batch_size=n)
    worst = {"at_route": -math.inf}

    def charge(counters):
        total = 0.0
        for c in rates:
            s, m = int(counters[K.agreements(c)]), int(counters[K.probes_of(c)])
            g = policy.bound.differing_bounds(s, m, policy.alphas[c])[1]
            total += min(counters[K.routed(c)], g)
        return total

    def check(view, decision, counters):
        if decision.route != REF:
            worst["at_route"] = max(worst["at_route"], charge(counters) - eps * n)

    trace = simulate(policy, rates, n, seed=seed, check=check)
    routed = n - trace.routes.count(REF)
    assert routed >= min_routed  # the run did route, so the budget check was exercised
    assert worst["at_route"] <= 1e-9
    assert charge(trace.counters) <= eps * n + 1e-9
    assert trace.differing / n <= eps
    assert all(b >= 1 - e - 1e-9 for b, e in zip(trace.bounds, trace.effective, strict=True))


def test_batch_tiny_budget_forces_every_item_to_the_reference():
    """With epsilon * N = 0.1 not one differing answer is affordable, and within ten items no
    number of probes could certify a candidate for the rest: every item goes to the reference
    as a plain call, with no money spent on probing."""
    policy = make_policy([MINI, NANO], epsilon=0.01, batch_size=10)
    trace = simulate(policy, {MINI: 1.0, NANO: 1.0}, 10, seed=0)
    assert trace.routes == [REF] * 10
    assert trace.probes == [False] * 10


def test_batch_short_of_budget_still_probes_when_certifying_could_pay():
    """Ten items of a 400-item batch at epsilon 0.1: a perfect cheap candidate could be certified
    for the rest after a few probes, so the first items are probes."""
    policy = make_policy([MINI, NANO], epsilon=0.1, batch_size=400)
    trace = simulate(policy, {MINI: 1.0, NANO: 1.0}, 10, seed=0)
    assert trace.probes[:5] == [True] * 5


def test_candidate_that_cannot_repay_even_when_perfect_is_not_probed_again():
    """A candidate priced close to the reference on a short batch with a tight target cannot
    save more than its probes cost even agreeing every time: it is dropped after the first
    probe shows its price, while a cheap candidate in the same task keeps being probed."""
    policy = make_policy([MINI, NANO], epsilon=0.02, batch_size=400)
    counters = {
        K.REQUESTS: 1.0,
        K.PROBES: 1.0,
        K.routed(REF): 1.0,
        K.calls(REF): 1.0,
        K.call_cost(REF): 1.0,
        K.calls(MINI): 1.0,
        K.call_cost(MINI): 0.9,  # 90 % of the reference's price
        K.calls(NANO): 1.0,
        K.call_cost(NANO): 0.01,
        K.probes_of(MINI): 1.0,
        K.agreements(MINI): 1.0,
        K.probes_of(NANO): 1.0,
        K.agreements(NANO): 1.0,
    }
    view = policy.view(counters)
    assert MINI in view.to_drop
    assert NANO in view.live


# -- split_delta ------------------------------------------------------------------------------


def test_split_delta_equal_by_default_and_sums_to_delta():
    """Without weights delta is split equally; the parts always sum to delta."""
    parts = split_delta(0.05, [MINI, NANO, HAIKU])
    assert set(parts) == {MINI, NANO, HAIKU}
    assert sum(parts.values()) == pytest.approx(0.05)
    assert all(v == pytest.approx(0.05 / 3) for v in parts.values())


def test_split_delta_is_proportional_to_weights():
    """Weights are relative: 3:1 gives 3/4 and 1/4 of delta; unnamed routes weigh 1."""
    parts = split_delta(0.1, [MINI, NANO, HAIKU], {MINI: 3.0, NANO: 1.0})
    assert sum(parts.values()) == pytest.approx(0.1)
    assert parts[MINI] == pytest.approx(0.1 * 3 / 5)
    assert parts[NANO] == pytest.approx(0.1 * 1 / 5)
    assert parts[HAIKU] == pytest.approx(0.1 * 1 / 5)
    assert parts[MINI] / parts[NANO] == pytest.approx(3.0)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_split_delta_rejects_non_positive_weights(bad):
    """A zero or negative weight would void the union bound: ValueError."""
    with pytest.raises(ValueError, match="positive"):
        split_delta(0.05, [MINI, NANO], {MINI: bad})


def test_split_delta_no_routes_is_empty():
    assert split_delta(0.05, []) == {}


def test_policy_bounds_use_delta_split_by_the_given_weights():
    """With delta_weights 3:1 each candidate's bound is computed at its share of delta (0.03 and
    0.01 of 0.04), so identical evidence gives the heavier-weighted candidate the tighter bound."""
    policy = make_policy([MINI, NANO], delta=0.04, delta_weights={MINI: 3.0, NANO: 1.0})
    counters = {
        K.probes_of(MINI): 200.0,
        K.agreements(MINI): 190.0,
        K.probes_of(NANO): 200.0,
        K.agreements(NANO): 190.0,
    }
    view = policy.view(counters)
    assert view.lower[MINI] == pytest.approx(policy.bound.lower(190, 200, 0.03))
    assert view.lower[NANO] == pytest.approx(policy.bound.lower(190, 200, 0.01))
    assert view.lower[MINI] > view.lower[NANO]


# -- validity under adaptive probing ----------------------------------------------------------


def _validity_run(
    policy: OnlineMixPolicy, p: float, seed: int, n: int = 1500, *, lag: int = 0
) -> bool:
    """One online run; True if some request was routed to the candidate by a view whose lower
    bound exceeded the candidate's true agreement ``p``.

    The view is refreshed after every probe until 100 probes and then after every 1 % growth,
    as the paper simulation does: a stale view carries older bounds, which the anytime guarantee
    covers just the same, and it keeps 200 runs fast. With a ``lag``, a differing answer is
    recorded only ``lag`` requests after its probe was decided (agreeing ones at once), as when
    differing answers are the long ones.
    """
    rng = random.Random(seed)
    counters: dict[str, float] = defaultdict(float)
    late: list[tuple[int, dict[str, float]]] = []
    view = None
    probes_at_view = 0.0
    for t in range(n):
        while late and late[0][0] <= t:
            for k, v in late.pop(0)[1].items():
                counters[k] += v
        probes = counters[K.probes_of(MINI)]
        if view is None or probes - probes_at_view >= max(1.0, 0.01 * probes):
            view, probes_at_view = policy.view(counters), probes
        decision = policy.decide_from(view, counters, rng)
        for k, v in decision.increments.items():
            counters[k] += v
        route = decision.route
        if route == MINI and view.lower[MINI] > p:
            return True
        if K.dropped(MINI) in decision.increments:
            view = None
        counters[K.calls(route)] += 1
        counters[K.call_cost(route)] += COSTS[route]
        for c in decision.probe_models:
            counters[K.calls(c)] += 1
            counters[K.call_cost(c)] += COSTS[c]
            agreed = rng.random() < p
            outcome = probe_outcome(decision, c, agreed)
            if agreed or not lag:
                for k, v in outcome.items():
                    counters[k] += v
            else:
                late.append((t + lag, outcome))
    return False


@pytest.mark.slow
def test_routing_bound_stays_valid_under_adaptive_probing():
    """Validity under adaptivity: the candidate's true agreement sits just below the target
    (1 - epsilon - 0.01), probes are drawn by the policy's own data-dependent mix, and over 200
    runs of 1,500 requests the share of runs that ever route on a lower bound above the truth is
    at most delta.

    Ville's inequality caps that share at delta; for the current prior the exact probability of
    the bound ever crossing 0.94 within 1,500 probes is about 2 %, so the check has margin. A
    bound that is not valid under repeated looks (the paper's Clopper-Pearson rule) crosses in
    about 17 % of these runs and fails it.
    """
    eps, delta, runs = 0.05, 0.05, 200
    p = 1 - eps - 0.01
    policy = make_policy([MINI], epsilon=eps, delta=delta)
    bad = sum(_validity_run(policy, p, seed) for seed in range(runs))
    assert bad / runs <= delta, f"{bad}/{runs} runs routed on an invalid bound (delta={delta})"


@pytest.mark.slow
def test_routing_bound_stays_valid_when_differing_answers_are_slow():
    """Probes still in flight count as differing answers: when differing answers take 300
    requests longer to come back, a bound on the answers already compared alone misses most of
    them and routes on a bound above the truth in nearly every run (the code before probes_open
    fails this test); counting the open probes keeps the share of such runs within delta."""
    eps, delta, runs = 0.05, 0.05, 200
    p = 1 - eps - 0.01
    policy = make_policy([MINI], epsilon=eps, delta=delta)
    bad = sum(_validity_run(policy, p, seed, n=1200, lag=300) for seed in range(runs))
    print(f"\nslow differing answers: {bad}/{runs} runs routed on a bound above the truth")
    assert bad / runs <= delta, f"{bad}/{runs} runs routed on an invalid bound (delta={delta})"


def test_open_probes_count_as_differing_in_the_bounds():
    """Ten probes decided but not yet compared: the lower bound is that of 90 agreements in 100
    probes, in request mode and in batch mode (where they also leave the unprobed items); the
    upper bound, which only decides whether probing may pay, ignores them."""
    for kw in ({}, {"batch_size": 5000}):
        policy = make_policy([MINI], **kw)
        settled = probed_counters(90, 90, [MINI])
        open_ = {**settled, K.probes_open(MINI): 10.0}
        full = probed_counters(100, 90, [MINI])
        assert policy.view(open_).lower[MINI] == policy.view(full).lower[MINI]
        assert policy.view(open_).lower[MINI] < policy.view(settled).lower[MINI]
        # Whether the candidate is worth probing is judged on its compared answers alone.
        assert policy.view(open_).upper[MINI] == policy.view(settled).upper[MINI]


def test_bounds_read_at_the_settled_prefix_too_keep_the_better_reading():
    """With a settled prefix supplied, the lower bound is the better of the two readings (open
    probes as differing; the prefix alone), and in batch mode the cap on differing unprobed
    answers is the smaller of the two, each over its own unprobed items."""
    policy = make_policy([MINI], batch_size=5000)
    # 200 compared (200 agreeing) plus 20 open; the prefix holds 150 probes, all agreeing.
    base = {**probed_counters(200, 200, [MINI]), K.probes_open(MINI): 20.0}
    both = TaskState.from_counters(base, prefix={MINI: (150, 150)})
    alpha = policy.alphas[MINI]
    imputed = policy.bound.lower(200, 220, alpha)
    prefix = policy.bound.lower(150, 150, alpha)
    assert prefix > imputed  # 20 open probes counted as differing weigh more than 70 fewer
    view = policy.view(both)
    assert view.lower[MINI] == max(imputed, prefix)
    caps = [(1 - imputed) * (5000 - 220), (1 - prefix) * (5000 - 150)]
    assert policy._cap(both, view.lower, MINI) == pytest.approx(min(caps))
    assert policy.view(base).lower[MINI] == imputed


def test_confirm_keeps_what_fits_and_moves_what_does_not_to_the_reference():
    """``confirm`` on counters read after the reservation: an item that still fits (or one that
    spends no budget) is kept as it is; one that overspends becomes a reference call, and its
    increments move the reservation (and its charge) from the candidate to the reference."""
    policy = make_policy([MINI], batch_size=100)
    counters = {**probed_counters(30, 30, [MINI]), K.REQUESTS: 99.0, K.routed(MINI): 4.0}
    decision = policy.decide(counters, random.Random(0))
    assert decision.route == MINI
    after = dict(counters)
    for k, v in decision.increments.items():
        after[k] = after.get(k, 0.0) + v
    assert policy.confirm(after, decision) is decision  # 5 items, budget 5
    after[K.routed(MINI)] += 1.0  # another worker's item, reserved before this one was checked
    moved = policy.confirm(after, decision)
    assert (moved.route, moved.probe, moved.probe_models) == (REF, False, ())
    assert moved.increments[K.routed(MINI)] == -1.0 and moved.increments[K.routed(REF)] == 1.0
    assert moved.increments.get(K.charged(MINI), 0.0) == -decision.increments.get(
        K.charged(MINI), 0.0
    )
    online = make_policy([MINI])
    routed = online.decide(probed_counters(3000, 3000, [MINI]), random.Random(1))
    assert online.confirm({}, routed) is routed


def test_batch_mode_sends_nothing_to_a_candidate_before_twenty_probes():
    """With the paper's bound, batch mode promises (``_MIN_PROBES_BEFORE_ROUTING``) that no
    batch item goes to a candidate before it has had 20 probes; with 10 perfect probes its mix
    weight must be 0 and no drawn decision may route to it."""
    policy = make_policy([MINI], epsilon=0.05, batch_size=1000, method="clopper-pearson")
    counters = probed_counters(10.0, 10.0, [MINI])
    view = policy.view(counters)
    rng = random.Random(0)
    routed = sum(policy.decide_from(view, counters, rng).route == MINI for _ in range(400))
    assert view.mix.get(MINI, 0.0) == 0.0
    assert routed == 0


def test_batch_keeps_probing_a_promising_candidate_rather_than_committing_early():
    """Ten perfect probes of a cheap candidate on a 1,000-item batch: committing now could only
    spend the budget on free items, while a few hundred probes more are predicted to let it
    carry the whole batch, so every item is a probe."""
    policy = make_policy([MINI], epsilon=0.05, batch_size=1000)
    counters = probed_counters(10.0, 10.0, [MINI])
    view = policy.view(counters)
    assert view.mix == {REF: 1.0}
    assert view.live == (MINI,)


def test_batch_tight_target_keeps_probing_while_it_could_still_stop_early():
    """A 2 % target on 5,000 items, two candidates at 55/60: carrying the batch needs thousands
    of probes, which pays only if they really agree about 0.92 or better. A fixed plan of that
    many probes loses in the poor scenario, but probing is not a fixed plan: a few hundred
    probes tell the scenarios apart and the batch can commit then. Valued with that option,
    probing on beats committing now (which could only spend the budget on free items)."""
    policy = make_policy([MINI, NANO], epsilon=0.02, batch_size=5000)
    counters = probed_counters(60.0, 55.0, [MINI, NANO])
    view = policy.view(counters)
    assert view.mix == {REF: 1.0}
    assert view.live


def test_batch_narrows_the_probes_before_giving_up_on_probing():
    """Three substitutes at 53/60 on a 1,500-item batch with a 5 % target: probing all three
    (claude-3-5-haiku costs a third of the reference per call) costs more than it can save,
    but probing the two cheap ones pays. The dear one stops being probed instead of the batch
    committing to the reference."""
    policy = make_policy([MINI, NANO, HAIKU], epsilon=0.05, batch_size=1500)
    counters = probed_counters(60.0, 53.0, [MINI, NANO, HAIKU])
    view = policy.view(counters)
    assert view.mix == {REF: 1.0}
    assert view.live == (MINI, NANO)
    assert HAIKU in view.to_drop


def test_batch_commits_the_rest_to_a_candidate_once_its_bound_covers_the_budget():
    """Once ``G_c`` of a cheap candidate fits within epsilon * N, probing more cannot pay: the
    view commits every remaining item to it and stops probing, and its certificate bound says
    what share of the remaining items the commitment may still let differ."""
    policy = make_policy([MINI], epsilon=0.05, batch_size=1000)
    counters = probed_counters(400.0, 400.0, [MINI])
    g = policy.bound.differing_bounds(400, 400, policy.alphas[MINI])[1]
    assert g <= 0.05 * 1000
    view = policy.view(counters)
    assert view.mix == {MINI: pytest.approx(1.0)}
    assert view.live == ()
    assert view.bound == pytest.approx(1.0 - g / 600)
    assert view.bound >= 1.0 - view.effective_epsilon


# -- realized-share margin (exact Poisson tail) ------------------------------------------------


def _poisson_binomial_sf(qs, k):
    """P(sum of independent Bernoulli(q_i) >= k), by exact dynamic programming."""
    dist = [1.0]
    for q in qs:
        nxt = [0.0] * (len(dist) + 1)
        for j, p in enumerate(dist):
            nxt[j] += p * (1.0 - q)
            nxt[j + 1] += p * q
        dist = nxt
    return sum(dist[k:])


@pytest.mark.parametrize(("allowed", "delta"), [(10.0, 0.05), (55.7, 0.00635), (111.5, 0.0142)])
def test_realized_budget_is_the_exact_poisson_quantile(allowed, delta):
    """B is the largest mean with P(Poisson(B) > allowed) <= delta: at B the tail is within delta
    and a slightly larger mean exceeds it."""
    from scipy.stats import poisson

    budget = realized_budget(allowed, delta)
    k = math.floor(allowed) + 1
    assert poisson.sf(k - 1, budget) <= delta * (1 + 1e-9)
    assert poisson.sf(k - 1, budget * 1.002 + 1e-3) > delta
    assert budget <= k - 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_routing_within_the_budget_keeps_the_realized_count_within_allowed(seed):
    """Whatever the items' own chances of differing (heterogeneous, summing to the budget B), the
    chance that more than ``allowed`` of them differ is at most delta: exact for each layout, and
    a 20,000-batch simulation that would tell a 5 % failure rate from 10 %."""
    rng = random.Random(seed)
    allowed, delta = 50.0, 0.05
    budget = realized_budget(allowed, delta)
    k = math.floor(allowed) + 1
    m = rng.choice([120, 400, 1500])
    raw = [rng.random() ** 3 for _ in range(m)]
    scale = budget / sum(raw)
    qs = [min(1.0, x * scale) for x in raw]
    assert sum(qs) <= budget + 1e-9
    exact = _poisson_binomial_sf(qs, k)
    assert exact <= delta
    import numpy as np

    draws = np.random.default_rng(seed).random((20_000, m)) < np.array(qs)
    failures = float(np.mean(draws.sum(axis=1) >= k))
    print(f"m={m} exact={exact:.4f} simulated={failures:.4f} delta={delta}")
    assert failures <= 0.065  # 5 % + 3.4 standard errors of a 5 % rate over 20,000 batches


def test_realized_budget_is_tight_for_many_small_chances():
    """Many items each differing rarely is the layout closest to the Poisson limit: the failure
    rate comes out just under delta (exact and over 200,000 simulated batches), so the margin
    is as small as the argument allows, and never too small."""
    import numpy as np
    from scipy.stats import binom

    allowed, delta, m = 50.0, 0.05, 5_000
    budget = realized_budget(allowed, delta)
    exact = binom.sf(math.floor(allowed), m, budget / m)
    simulated = float(np.mean(np.random.default_rng(0).binomial(m, budget / m, 200_000) > allowed))
    print(f"exact={exact:.4f} simulated={simulated:.4f} delta={delta}")
    assert 0.04 <= exact <= delta
    assert simulated <= delta + 0.0015  # 3 standard errors


# -- batch commitment: predictions that steer probing ------------------------------------------


@pytest.mark.parametrize("rate", [0.9, 0.96])
def test_predicted_cap_tracks_the_exact_bound_it_extrapolates(rate):
    """Probing decisions extrapolate today's bound in standard errors instead of computing the
    exact bound at every future count; the extrapolation stays within 6 % of the exact
    ``G`` from 1.5 to 20 times today's probes."""
    n_items = 50_000
    policy = make_policy([MINI], epsilon=0.1, batch_size=n_items)
    alpha = policy.alphas[MINI]
    n0 = 100
    s0 = round(rate * n0)
    counters = {K.probes_of(MINI): float(n0), K.agreements(MINI): float(s0)}
    cap0 = policy.bound.differing_bounds(s0, n0, alpha)[1]
    width = policy._bound_width(TaskState.from_counters(counters), MINI, cap0)
    p = (s0 + 0.5) / (n0 + 1.0)
    for n in (150, 300, 1000, 2000):
        exact = policy.bound.differing_bounds(round(p * n), n, alpha)[1]
        assert policy._predicted_cap(p, n, width) == pytest.approx(exact, rel=0.06)


def test_lookaheads_cover_both_ends_of_the_batch():
    """On a tight target the cheapest plan may probe most of the batch, so the look-aheads are
    dense near the end of the batch as well as near the start."""
    steps = _lookaheads(100_000.0)
    assert steps[0] == 10
    assert max(steps) >= 100_000 - 10
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert all(b / a < 1.5 for a, b in itertools.pairwise(steps) if b <= 50_000)


# -- one class per mode; the state read once ---------------------------------------------------


def test_policy_for_picks_the_class_of_the_configured_mode():
    """Online without ``batch_size``; in batch mode the commitment plan on the anytime bound
    (the finite-population one) and the per-item budget on Clopper-Pearson. The classes refuse
    a bound they are not built for."""
    from smart_core import SmartConfig
    from smart_core.policy import policy_for

    base = {"task": "t", "epsilon": 0.05, "reference": REF, "candidates": [MINI]}
    online = policy_for(SmartConfig(**base))
    plan = policy_for(SmartConfig(**base, batch_size=500))
    budget = policy_for(SmartConfig(**base, batch_size=500, method="clopper-pearson"))
    assert type(online) is OnlineMixPolicy and online.batch_size is None
    assert type(plan) is BatchPlanPolicy and plan.batch_size == 500
    assert type(budget) is BatchBudgetPolicy and budget.batch_size == 500
    assert all(isinstance(p, Policy) for p in (online, plan, budget))
    assert (online.audit_rate, budget.audit_rate) == (0.01, 0.0)
    with pytest.raises(ValueError, match="finite-population"):
        BatchPlanPolicy(
            task="t", reference=REF, candidates=[MINI], epsilon=0.05, delta=0.05,
            prior_costs=COSTS, batch_size=500, method="clopper-pearson",
        )  # fmt: skip
    with pytest.raises(ValueError, match="BatchPlanPolicy"):
        BatchBudgetPolicy(
            task="t", reference=REF, candidates=[MINI], epsilon=0.05, delta=0.05,
            prior_costs=COSTS, batch_size=500, method="anytime",
        )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "kw", [{}, {"batch_size": 2000}, {"batch_size": 2000, "method": "clopper-pearson"}]
)
def test_a_typed_state_and_plain_counters_give_the_same_decisions(kw):
    """``decide``, ``view``, ``confirm`` and ``batch_charges`` take a TaskState or the store's
    plain counters: the same run, fed one or the other, decides the same way at every step."""
    runs = []
    for typed in (False, True):
        policy = make_policy([MINI, NANO], **kw)
        rng, counters, out = random.Random(5), defaultdict(float), []
        for _ in range(600):
            state = TaskState.from_counters(counters) if typed else dict(counters)
            d = policy.decide(state, rng)
            for k, v in d.increments.items():
                counters[k] += v
            after = TaskState.from_counters(counters) if typed else dict(counters)
            checked = policy.confirm(after, d)
            view = policy.view(after)
            out.append((d, checked, view, policy.batch_charges(after, view.lower)))
            counters[K.calls(d.route)] += 1
            counters[K.call_cost(d.route)] += COSTS[d.route]
            for c in d.probe_models:
                for k, v in probe_outcome(d, c, rng.random() < 0.97).items():
                    counters[k] += v
        runs.append(out)
    assert runs[0] == runs[1]
    assert any(d.route != REF for d, *_ in runs[0])


def test_task_state_reads_every_counter_the_policy_uses():
    """TaskState.from_counters: totals, per-route counters, each candidate's evidence, its drift
    epoch and that epoch's own counters; a charge is kept only where one was recorded."""
    counters = {
        K.REQUESTS: 50.0,
        K.PROBES: 20.0,
        K.SPENT: 1.5,  # not the policy's business
        K.routed(MINI): 7.0,
        K.charged(MINI): 0.4,
        K.routed(NANO): 2.0,
        K.calls(MINI): 27.0,
        K.call_cost(MINI): 0.01,
        K.probes_of(MINI): 20.0,
        K.agreements(MINI): 19.0,
        K.probes_open(MINI): 2.0,
        K.dropped(NANO): 1.0,
        K.epoch(MINI): 2.0,
        K.epoch_probes(MINI, 2): 5.0,
        K.epoch_agreements(MINI, 2): 4.0,
        K.epoch_dropped(MINI, 2): 1.0,
    }
    state = TaskState.from_counters(counters)
    assert (state.requests, state.probes) == (50.0, 20.0)
    assert state.routed == {MINI: 7.0, NANO: 2.0} and state.charged == {MINI: 0.4}
    assert (state.calls[MINI], state.call_cost[MINI]) == (27.0, 0.01)
    mini = state.evidence_of(MINI)
    assert (mini.compared, mini.agreed, mini.open, mini.dropped, mini.sampled) == (20, 19, 2, 0, 22)
    assert state.evidence_of(NANO).dropped == 1.0 and state.evidence_of(HAIKU).compared == 0.0
    assert state.epoch_of(MINI) == 2 and state.epoch_of(NANO) == 0
    epoch = state.in_epoch(MINI, 2)
    assert (epoch.compared, epoch.agreed, epoch.open, epoch.dropped) == (5.0, 4.0, 0.0, 1.0)
    assert state.prefix is None
    assert TaskState.of(state) is state and TaskState.of(counters) == state
