"""Batch mode with screening: the stages, what each stage's counters hold, that certification
spends delta on screening's choice alone, and the guarantee by simulation at the threshold."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pytest

from smart_core import SmartConfig
from smart_core.policy import (
    BatchPlanPolicy,
    ScreenedBatchPolicy,
    TaskState,
    batch_policy,
    policy_for,
    probe_failure,
    probe_outcome,
)
from smart_core.policy import keys as K
from smart_core.policy.base import MIN_PROBES_BEFORE_DROP
from smart_core.policy.leader_looks import GRID_LIMIT
from smart_core.policy.screened_batch import (
    LOOK_SHARE,
    MIN_SCREEN,
    ONE_LOOK_SHARE,
    Prospect,
    certification_shares,
    contenders,
    default_screen,
    priced_out,
)
from smart_core.policy.state import Evidence
from smart_core.stats.sequential_looks import look_error

REF = "ref"
#: Cost of one call: three cheap candidates, a dear one (the reference's price), a pricey one
#: (most of it) and a free one.
COSTS = {REF: 0.005, "a": 0.0004, "b": 0.0003, "c": 0.0005, "dear": 0.005, "junk": 0.0001}
COSTS["pricey"] = 0.004


def make(candidates=("a", "b", "c", "junk"), *, n=1500, epsilon=0.10, delta=0.05, screen=None):
    return ScreenedBatchPolicy(
        task="t",
        reference=REF,
        candidates=list(candidates),
        epsilon=epsilon,
        delta=delta,
        prior_costs=COSTS,
        batch_size=n,
        screen=screen,
    )


@dataclass
class Run:
    counters: dict[str, float]
    differing: int
    cost: float
    screened: int
    probes: int


def simulate(policy, rates: Mapping[str, float], *, seed: int, costs=COSTS) -> Run:
    """One batch through the real policy: every item's answers drawn at the true rates, the
    decision's increments applied, probes settled at once as the router settles them (screening
    costs kept apart, as engine.increments does)."""
    rng = random.Random(seed)
    counters: dict[str, float] = defaultdict(float)
    differing, cost = 0, 0.0
    for _ in range(policy.batch_size):
        decision = policy.decide(counters, rng)
        for k, v in decision.increments.items():
            counters[k] += v
        cost += costs[decision.route]
        screening = decision.stage == "screening"
        if decision.probe and screening:
            counters[K.screen_calls(REF)] += 1
            counters[K.screen_cost(REF)] += costs[REF]
        for c in decision.probe_models:
            cost += costs[c]
            counters[K.calls(c)] += 1
            counters[K.call_cost(c)] += costs[c]
            if screening:
                counters[K.screen_calls(c)] += 1
                counters[K.screen_cost(c)] += costs[c]
            for k, v in probe_outcome(decision, c, rng.random() < rates[c]).items():
                counters[k] += v
        if decision.route != REF and rng.random() >= rates[decision.route]:
            differing += 1
    return Run(dict(counters), differing, cost, int(counters[K.SCREENED]), int(counters[K.PROBES]))


def screened_30(agreed: Mapping[str, int]) -> dict[str, float]:
    """The counters of a batch whose screening ended after 30 requests, each candidate probed on
    all of them and agreeing ``agreed[c]`` times."""
    counters = {K.REQUESTS: 30, K.PROBES: 30, K.SCREENED: 30, K.routed(REF): 30}
    for c, n in agreed.items():
        counters |= {K.probes_of(c): 30, K.agreements(c): n}
        counters |= {K.screen_calls(c): 30, K.screen_cost(c): 30 * COSTS[c]}
    counters |= {K.screen_calls(REF): 30, K.screen_cost(REF): 30 * COSTS[REF]}
    return counters


# -- stages ------------------------------------------------------------------------------------


def test_screening_probes_every_candidate_and_routes_nothing_to_them():
    policy = make()
    rng = random.Random(0)
    counters: dict[str, float] = defaultdict(float)
    for _ in range(MIN_SCREEN):
        d = policy.decide(counters, rng)
        assert d.stage == "screening" and d.route == REF and d.probe
        assert set(d.probe_models) == {"a", "b", "c", "junk"}
        assert d.increments[K.SCREENED] == 1.0
        for k, v in d.increments.items():
            counters[k] += v
        for c in d.probe_models:  # settle each probe: every candidate agrees
            for k, v in probe_outcome(d, c, True).items():
                counters[k] += v
    assert counters[K.SCREENED] == MIN_SCREEN
    assert not any(k.startswith("cert.") for k in counters)


def test_screening_judges_on_the_outcomes_in_not_the_requests_asked():
    """With many requests in flight, the first screening requests' outcomes are still out when
    the 24th is decided. Screening goes on until it has seen as many outcomes as it needs, and
    drops no candidate on the few it has seen (judged on requests asked, it ended at once with
    no candidate compared, and with 32 in flight ``smart run`` then certified a poorer one)."""
    policy = make()
    rng = random.Random(0)
    counters: dict[str, float] = defaultdict(float)
    held = []
    for i in range(MIN_SCREEN + 32):  # fewer than MIN_SCREEN outcomes in at every decision
        d = policy.decide(counters, rng)
        assert d.stage == "screening", i
        assert set(d.probe_models) == {"a", "b", "c", "junk"}, i
        for k, v in d.increments.items():
            counters[k] += v
        held.append(d)
        if len(held) > 32:  # 32 in flight: the oldest settles, every candidate agreeing
            old = held.pop(0)
            for c in old.probe_models:
                for k, v in probe_outcome(old, c, True).items():
                    counters[k] += v
    assert counters[K.SCREENED] == MIN_SCREEN + 32


@pytest.mark.parametrize("cheap_agree", [True, False])
def test_a_pricey_candidate_waits_for_its_outcomes_in_screening_the_cheap_ones_do_not(
    cheap_agree,
):
    """With 32 requests in flight, a candidate priced near the reference joins one screening
    probe (its price is then known) and waits until MIN_PROBES_BEFORE_DROP screening outcomes
    are in; the cheap ones join every probe. Those outcomes decide: priced out where the cheap
    ones agree as often (after 1 probe of its own, not 32), probed again where they do not."""
    policy = make(("a", "b", "c", "pricey"))
    rng = random.Random(0)
    counters: dict[str, float] = defaultdict(float)
    held = []
    joined: Counter[str] = Counter()
    for _ in range(32):
        d = policy.decide(counters, rng)
        assert d.stage == "screening"
        joined.update(d.probe_models)
        for k, v in d.increments.items():
            counters[k] += v
        held.append(d)
    assert joined == {"a": 32, "b": 32, "c": 32, "pricey": 1}
    for old in held[:MIN_PROBES_BEFORE_DROP]:  # the first outcomes in, pricey's among them
        for c in old.probe_models:
            for k, v in probe_outcome(old, c, cheap_agree or c == "pricey").items():
                counters[k] += v
    d = policy.decide(counters, rng)
    assert d.stage == "screening"
    assert ("pricey" in d.probe_models) is not cheap_agree


def test_one_at_a_time_a_pricey_candidate_is_probed_once_until_it_can_be_priced_out():
    """One request at a time nothing is ever out, yet a candidate priced near the reference
    joins only the first screening probe: MIN_PROBES_BEFORE_DROP outcomes must be in before
    anything may price it out, and its own agreements do not enter that rule. Where the cheap
    candidates agree as often, it is dropped then, after one call instead of eight."""
    policy = make(("a", "b", "c", "pricey"))
    rng = random.Random(0)
    counters: dict[str, float] = defaultdict(float)
    joined: Counter[str] = Counter()
    for _ in range(MIN_PROBES_BEFORE_DROP):
        d = policy.decide(counters, rng)
        assert d.stage == "screening" and K.dropped("pricey") not in d.increments
        joined.update(d.probe_models)
        for k, v in d.increments.items():
            counters[k] += v
        for c in d.probe_models:
            for k, v in probe_outcome(d, c, True).items():
                counters[k] += v
    assert joined == {c: MIN_PROBES_BEFORE_DROP for c in "abc"} | {"pricey": 1}
    d = policy.decide(counters, rng)
    assert d.stage == "screening" and "pricey" not in d.probe_models
    assert d.increments.get(K.dropped("pricey")) == 1.0


def test_certification_stops_probing_a_contender_its_probes_tell_apart_from_the_leader():
    """Screening kept b beside a (28 and 29 agreements in 30). In certification b agrees 80 %
    of the time and a 96 %: b stops being probed once its certification probes tell it apart
    (the screening rule, on everything seen), within a few dozen probes, while a is probed on;
    valued at its upper bound alone, b was called on 84 probes."""
    policy = make(screen=30)
    counters = defaultdict(float, screened_30({"a": 29, "b": 28, "c": 18, "junk": 2}))
    rng, outcomes = random.Random(1), random.Random(5)
    probed: Counter[str] = Counter()
    dropped_at = None
    for i in range(150):
        d = policy.decide(counters, rng)
        probed.update(d.probe_models)
        if K.cert_dropped("b") in d.increments:
            dropped_at = probed["a"]
        for k, v in d.increments.items():
            counters[k] += v
        for c in d.probe_models:
            agreed = i % 25 != 0 if c == "a" else outcomes.random() < 0.8
            for k, v in probe_outcome(d, c, agreed).items():
                counters[k] += v
    assert dropped_at is not None and dropped_at <= 3 * MIN_PROBES_BEFORE_DROP
    assert probed["b"] <= dropped_at and probed["a"] > 2 * probed["b"]


def test_certification_bounds_count_only_the_probes_after_screening():
    """However good a candidate looked in screening, its bound starts from nothing: screening's
    probes chose it, so they cannot also certify it."""
    policy = make(screen=30)
    counters = screened_30({"a": 30, "b": 20, "c": 18, "junk": 2})
    view = policy.view(counters)
    assert view.stage == "certifying"
    assert view.lower["a"] == 0.0
    assert view.live and "a" in view.live and "junk" not in view.live
    d = policy.decide(counters, random.Random(1))
    assert d.probe and d.stage == "certifying" and "a" in d.probe_models
    assert d.increments[K.cert_open("a")] == 1.0
    # Its outcome lands in both families of counters; a failure settles both.
    assert probe_outcome(d, "a", True)[K.cert_agreements("a")] == 1.0
    assert probe_outcome(d, "a", False)[K.probes_of("a")] == 1.0
    assert probe_failure(d, "a")[K.cert_open("a")] == -1.0
    # 400 agreeing certification probes later the bound is high.
    more = {**counters, K.REQUESTS: 430, K.PROBES: 430}
    more |= {K.cert_probes("a"): 400, K.cert_agreements("a"): 400}
    more |= {K.probes_of("a"): 430, K.agreements("a"): 430}
    assert policy.view(more).lower["a"] > 0.95


def test_certification_predictions_weigh_screening_but_its_bounds_never_do():
    """Whether probing on pays is a prediction and may read screening (half weight: the leader
    is the candidate screening saw at its best); the certification bound reads its own probes
    only. Without screening's counts, a leader screening saw agree 30 times in 30 looks poor
    after a few unlucky certification probes and the batch may give it up."""
    policy = make(screen=30)
    counters = screened_30({"a": 30, "b": 20, "c": 18, "junk": 2})
    more = {**counters, K.REQUESTS: 70, K.PROBES: 70}
    more |= {K.cert_probes("a"): 40, K.cert_agreements("a"): 34}
    more |= {K.probes_of("a"): 70, K.agreements("a"): 64}
    state = TaskState.of(more)
    plan = policy._plan(state)
    cert = policy._certification_state(state)
    assert plan.screened["a"] == (30, 30)
    assert plan._rate_estimate(cert, "a") == pytest.approx((34 + 15 + 0.5) / (40 + 15 + 1))
    pooled = policy.view(more).lower
    plan.screened = {}  # the same plan, predicting from certification alone
    policy._last = None
    assert plan._rate_estimate(cert, "a") == pytest.approx((34 + 0.5) / (40 + 1))
    assert policy.view(more).lower == pooled


def test_probes_after_the_look_take_what_they_found_off_its_bound():
    """A passing look certifies the budget for the items it left unprobed; probes after it are
    among those items. Finding no differing answer there leaves the cap where it was (a cap
    scaled down to the fewer items left would claim fewer differing answers than the look can
    vouch for); each differing answer found takes one off. A look whose sample is not all in
    certifies nothing."""
    policy = make(screen=30)
    counters = screened_30({"a": 30, "b": 20, "c": 18, "junk": 2})
    plan = policy._plan(TaskState.of(counters))
    looks = plan.looks["a"]
    n = looks.sizes[len(looks.sizes) // 2]
    k = looks.passes[len(looks.sizes) // 2]  # as many differing answers as still pass
    rest = plan.batch_size

    def look_after(more: int, differing: int, look_open: int = 0) -> tuple[float, float]:
        """(the look's cap on the items unprobed now, G_c as the plan reads it from the
        look's lower bound alone)."""
        probes = n + more
        state = {**counters, K.REQUESTS: 30 + probes, K.PROBES: 30 + probes}
        state |= {K.look_probes("a"): n, K.look_agreements("a"): n - k}
        state |= {K.look_open("a"): look_open}
        state |= {K.cert_probes("a"): probes, K.cert_agreements("a"): probes - k - differing}
        state |= {K.probes_of("a"): 30 + probes, K.agreements("a"): 30 + probes - k - differing}
        cert = policy._certification_state(TaskState.of(state))
        lower, _, _ = plan._bounds(cert)
        return plan._look_cap(cert, "a"), (1.0 - lower["a"]) * (rest - probes)

    assert looks.budget == 150
    assert look_after(0, 0)[0] == pytest.approx(150)
    assert look_after(0, 0, look_open=1)[0] is None
    # Not 150 * (rest - n - 200) / (rest - n).
    assert look_after(200, 0)[0] == pytest.approx(150)
    assert look_after(200, 3)[0] == pytest.approx(147)
    # Where the look's cap is the tighter one, the plan's G_c is that cap, not less.
    cap, from_lower = look_after(200, 60)
    assert cap == pytest.approx(90)
    assert from_lower == pytest.approx(cap)


def test_look_probes_pause_at_each_size_until_the_sample_is_all_in():
    """With probes in flight, tagging stops at the next look's size (a look is read only when
    no look probe is open), resumes once they settle, and stops for good once a look passed."""
    policy = make(screen=30)
    counters = screened_30({"a": 30, "b": 20, "c": 18, "junk": 2})
    plan = policy._plan(TaskState.of(counters))
    looks = plan.looks["a"]
    # a look at least four probes after the one before it
    n = next(b for a, b in zip(looks.sizes, looks.sizes[1:], strict=False) if b - a >= 4)

    def pending(compared: int, open_: int, differing: int | None = None) -> tuple[str, ...]:
        """Look probes so far (all differing unless told): which candidates to tag next."""
        differing = compared if differing is None else differing
        probes = compared + open_
        state = {**counters, K.REQUESTS: 30 + probes, K.PROBES: 30 + probes}
        state |= {K.look_probes("a"): compared, K.look_agreements("a"): compared - differing}
        state |= {K.look_open("a"): open_}
        state |= {K.cert_probes("a"): compared, K.cert_agreements("a"): compared - differing}
        state |= {K.cert_open("a"): open_}
        return plan._pending_looks(policy._certification_state(TaskState.of(state)))

    assert pending(n - 3, 2) == ("a",)
    assert pending(n - 3, 3) == ()  # the next look's sample is all tagged: wait for it
    assert pending(n + 1, 0) == ("a",)  # read (late) and failed: on to the next size
    assert pending(n, 0, 0) == ()  # passed: no more look probes


def test_with_the_settled_prefix_looks_are_read_on_it_while_later_probes_are_out():
    """Where the run supplies the settled prefix of the look probes (``smart run``), tagging
    goes on past each size while probes are in flight, and a look is read on the first look
    probes decided as soon as they are in: with 32 probes in flight, waiting at every size
    until the whole sample is in made three probes of every four miss the look. Look probes
    settled after the prefix are outside its sample: what they found comes off the cap."""
    policy = make(screen=30)
    counters = screened_30({"a": 30, "b": 20, "c": 18, "junk": 2})
    plan = policy._plan(TaskState.of(counters))
    looks = plan.looks["a"]
    j = len(looks.sizes) // 2
    n, k = looks.sizes[j], looks.passes[j]

    def cert(tagged: int, open_: int, prefix: tuple[int, int, int], later: int = 0) -> TaskState:
        """``tagged`` look probes, ``open_`` of them out; the prefix (compared, agreed, never
        settling); ``later`` differing answers among settled look probes after the prefix."""
        compared, agreed, lost = prefix
        differing = compared - agreed + later
        state = {**counters, K.REQUESTS: 30 + tagged, K.PROBES: 30 + tagged}
        done = tagged - open_
        state |= {K.look_probes("a"): done, K.look_agreements("a"): done - differing}
        state |= {K.look_open("a"): open_}
        state |= {K.cert_probes("a"): done, K.cert_agreements("a"): done - differing}
        state |= {K.cert_open("a"): open_}
        look = Evidence(compared=compared, agreed=agreed, open=lost)
        whole = TaskState.from_counters(state, look_prefix={"a": look})
        return policy._certification_state(whole)

    # The sample reached the next size with 32 still out: tagging goes on (without the prefix
    # it waits), and no look is read before its probes are in.
    assert plan._pending_looks(cert(n + 32, 32, (n - 10, n - 10 - k - 1, 0))) == ("a",)
    assert plan._look_cap(cert(n + 32, 32, (n - 10, n - 10 - k - 1, 0)), "a") is None
    # The first n are in and pass: certified with 32 later ones out, the budget whole.
    assert plan._look_cap(cert(n + 32, 32, (n, n - k, 0)), "a") == pytest.approx(looks.budget)
    assert plan._pending_looks(cert(n + 32, 32, (n, n - k, 0))) == ()
    # One over the pass mark, or a lost probe in the prefix read as differing: not yet.
    assert plan._look_cap(cert(n + 32, 32, (n, n - k - 1, 0)), "a") is None
    assert plan._look_cap(cert(n + 32, 32, (n - 1, n - 1 - k, 1)), "a") is None
    # Two differing answers among settled look probes after the prefix come off the budget.
    capped = plan._look_cap(cert(n + 32, 20, (n, n - k, 0), later=2), "a")
    assert capped == pytest.approx(looks.budget - 2)


def test_a_small_batch_gets_a_grid_of_looks_and_a_large_one_one_look():
    """Up to GRID_LIMIT items left, the leader's looks are a grid centred on the one-look size;
    past it, one look at that size, with the share one look had (the grid's exact calibration
    grows with the square of the batch)."""
    counters = screened_30({"a": 30, "b": 20, "c": 18, "junk": 2})
    small = make(screen=30)._plan(TaskState.of(counters))
    large = make(screen=30, n=GRID_LIMIT + 1000)._plan(TaskState.of(counters))
    grid, one = small.looks["a"], large.looks["a"]
    assert len(grid.sizes) > 20 and len(one.sizes) == 1
    assert grid.sizes[0] < one.sizes[0] / 2 < grid.sizes[-1]
    # the leader's share of delta: LOOK_SHARE of it on the grid, ONE_LOOK_SHARE on one look
    for plan, share in ((small, LOOK_SHARE), (large, ONE_LOOK_SHARE)):
        looks = plan.looks["a"]
        anytime = plan.alphas["a"]
        assert looks.alpha / (looks.alpha + anytime) == pytest.approx(share)
        assert sum(plan.alphas.values()) + looks.alpha == pytest.approx(0.05)


def test_a_look_one_differing_answer_over_its_pass_mark_certifies_nothing():
    policy = make(screen=30)
    counters = screened_30({"a": 30, "b": 20, "c": 18, "junk": 2})
    plan = policy._plan(TaskState.of(counters))
    looks = plan.looks["a"]
    n, k = looks.sizes[0], looks.passes[0] + 1
    state = {**counters, K.REQUESTS: 30 + n, K.PROBES: 30 + n}
    state |= {K.look_probes("a"): n, K.look_agreements("a"): n - k}
    state |= {K.cert_probes("a"): n, K.cert_agreements("a"): n - k}
    cert = policy._certification_state(TaskState.of(state))
    assert plan._look_cap(cert, "a") is None


def test_the_plan_is_fixed_by_screening_alone():
    """The shares (and the planned look) are a function of screening's counters: certification
    outcomes, good or bad, and how far the certification stage has got never change them, in
    this worker or in a fresh one (workers share a store, not the policy object)."""
    base = {K.PROBES: 60, K.SCREENED: 30, K.routed(REF): 60}
    for c, agreed in (("a", 29), ("b", 27), ("c", 20), ("junk", 3)):
        base |= {K.probes_of(c): 30, K.agreements(c): agreed}
        base |= {K.screen_calls(c): 30, K.screen_cost(c): 30 * COSTS[c]}
    base |= {K.screen_calls(REF): 30, K.screen_cost(REF): 30 * COSTS[REF]}
    same_worker = make(screen=30)
    plans = []
    for agreed, requests in ((0, 60), (15, 400), (30, 1200)):
        counters = {**base, K.REQUESTS: requests}
        for c in ("a", "b"):
            counters[K.probes_of(c)] += 30
            counters[K.agreements(c)] += agreed
            counters |= {K.cert_probes(c): 30, K.cert_agreements(c): agreed}
        state = TaskState.from_counters(counters)
        for policy in (same_worker, make(screen=30)):
            plan = policy._plan(state)
            plans.append((plan.alphas, plan.looks))
    assert all(p == plans[0] for p in plans)
    alphas, looks = plans[0]
    assert list(looks) == ["a"]  # the leader's looks
    assert abs(sum(alphas.values()) + looks["a"].alpha - 0.05) < 1e-12


def test_shares_concentrate_on_the_leader_and_sum_to_one():
    found = {
        "a": Prospect(10.0, 8.0, 12.0),
        "b": Prospect(7.0, 5.0, 11.0),  # may still beat a
        "c": Prospect(3.0, 1.0, 5.0),  # cannot
        "d": Prospect(-1.0, -2.0, 0.0),  # can save nothing
    }
    assert contenders(found) == ["a", "b"]
    shares = certification_shares(found)
    assert set(shares) == {"a", "b"} and abs(sum(shares.values()) - 1.0) < 1e-12
    assert shares["a"] > shares["b"]
    assert certification_shares({"a": Prospect(10.0, 8.0, 12.0)}) == {"a": 1.0}
    assert certification_shares({"d": Prospect(-1.0, -2.0, 0.0)}) == {}


def test_a_useless_or_dear_candidate_is_not_certified():
    """A candidate that never agrees leaves screening within its first probes, and one at the
    reference's price is never certified: neither can save anything."""
    policy = make(candidates=("a", "b", "dear", "junk"))
    run = simulate(policy, {"a": 0.97, "b": 0.8, "dear": 0.99, "junk": 0.0}, seed=3)
    c = run.counters
    assert c[K.dropped("junk")] == 1.0
    assert c[K.probes_of("junk")] <= MIN_SCREEN + 8
    assert c.get(K.cert_probes("dear"), 0.0) == 0.0 and c.get(K.cert_probes("junk"), 0.0) == 0.0
    assert c[K.routed("a")] > 0.5 * policy.batch_size  # and the good one carries the batch


def test_the_budget_no_certificate_needs_goes_to_the_cheapest_candidate():
    """Where screening finds nothing worth certifying, the items the budget allows uncertified
    (each charged as a differing answer) still go to the cheapest candidate, which screening
    did not choose: the batch costs less than the reference alone, within the budget."""
    eps, n = 0.05, 1500
    policy = make(epsilon=eps, n=n)
    run = simulate(policy, {"a": 0.6, "b": 0.55, "c": 0.5, "junk": 0.0}, seed=4)
    c = run.counters
    taken = c.get(K.routed("junk"), 0.0)
    assert 0.5 * eps * n <= taken <= eps * n
    assert not any(c.get(K.routed(x), 0.0) for x in ("a", "b", "c"))
    assert run.differing <= eps * n
    assert c.get(K.probes_of("junk"), 0.0) <= MIN_SCREEN  # never probed after screening


def test_the_cheapest_candidate_takes_no_share_of_delta():
    """Beside the candidates screening chose, the cheapest one joins the certification plan
    for items charged in full: the chosen keep exactly their shares of delta, and its items are
    charged one each whatever its bound would say."""
    policy = make()
    counters = screened_30({"a": 30, "b": 20, "c": 15, "junk": 0})
    plan = policy._plan(TaskState.of(counters))
    assert plan is not None and plan.free == "junk" and "junk" in plan.candidates
    assert "junk" not in plan.alphas
    assert sum(plan.alphas.values()) == pytest.approx(plan.delta)
    state = policy._certification_state(TaskState.of(counters))
    lower, _, live = plan._bounds(state)
    assert lower["junk"] == 0.0 and "junk" not in live
    assert plan._cap(state, lower, "junk") == plan.batch_size  # all of its items may differ


def test_candidates_without_a_certification_bound_show_the_interval_that_claims_nothing():
    """After screening, a candidate not chosen (and the cheapest, which takes the budget no
    certificate needs) has no bound: the view, which the ledger prints, gives it [0, 1], never
    an upper bound of 0 beside its screening's agreements."""
    policy = make(screen=30)
    counters = screened_30({"a": 30, "b": 20, "c": 18, "junk": 2})
    plan = policy._plan(TaskState.of(counters))
    view = policy.view(TaskState.of(counters))
    unbounded = [c for c in ("b", "c", "junk") if c not in plan.candidates or c == plan.free]
    assert unbounded  # the check is exercised
    for c in unbounded:
        assert (view.lower[c], view.upper[c]) == (0.0, 1.0), c
    assert 0.0 < view.upper["a"] <= 1.0


def test_priced_out_compares_a_best_case_with_the_others_low_ends():
    found = {
        "a": Prospect(10.0, 8.0, 12.0, 40.0),
        "pricey": Prospect(5.0, 3.0, 6.0, 7.9),  # even agreeing always, below a's low end
        "b": Prospect(2.0, -1.0, 6.0, 30.0),  # poorly known but cheap: may still matter
    }
    assert priced_out(found) == ["pricey"]
    assert priced_out({"a": Prospect(10.0, 8.0, 12.0)}) == []  # best unknown: never priced out
    assert priced_out({}) == []


def test_default_screen_and_the_policy_a_config_gets():
    assert default_screen(1500, 5) == 0 and default_screen(300, 8) == 0
    assert MIN_SCREEN <= default_screen(1500, 6) <= 240
    base = {"task": "t", "epsilon": 0.1, "reference": "gpt-4o"}
    models = ["gpt-4o-mini", "gpt-4.1-nano", "gpt-4.1-mini", "gpt-4.1", "o4-mini", "gpt-5-mini"]
    many = {**base, "candidates": models}
    assert type(policy_for(SmartConfig(**many, batch_size=1500))) is ScreenedBatchPolicy
    assert type(policy_for(SmartConfig(**many, batch_size=1500, screen=0))) is BatchPlanPolicy
    assert type(policy_for(SmartConfig(**base, candidates=["gpt-4o-mini"], batch_size=1500))) is (
        BatchPlanPolicy
    )
    assert policy_for(SmartConfig(**many, batch_size=1500, screen=50)).screen == 50
    with pytest.raises(ValueError, match="screen"):
        SmartConfig(**many, batch_size=1500, screen=-1)
    with pytest.raises(ValueError, match="screen"):
        batch_policy(
            task="t", reference=REF, candidates=["a", "b", "c"], epsilon=0.1, delta=0.05,
            prior_costs=COSTS, batch_size=100, screen=100,
        )  # fmt: skip


def test_a_restored_ticket_keeps_its_stage_and_look():
    from smart_core.engine.ticket import Ticket
    from smart_core.jobs.run_records import ticket_from, ticket_json

    policy = make(screen=30)
    counters = screened_30({"a": 29, "b": 10, "c": 10, "junk": 10})
    d = policy.decide(counters, random.Random(0))
    assert d.stage == "certifying" and d.look == ("a",)
    back = ticket_from(ticket_json(Ticket("r1", d, d.route)))
    assert back.decision.stage == "certifying" and back.decision.look == ("a",)


# -- the guarantee, by simulation --------------------------------------------------------------


@pytest.mark.slow
def test_selection_then_the_looks_cover_the_truth_at_the_threshold():
    """The statistical core, 1,500 times: a random order of a batch, screening on its first
    items, the shares and the looks fixed from screening alone, then the looks on fresh items of
    the rest, read at every planned size. The leader's differing answers sit where its looks
    are most often wrong (their exact chance of a wrong certificate averages over half their
    share of delta); the share of batches some look certifies wrongly stays within that share
    (three standard errors), which a rule that reused screening's probes would not. The same
    holds with every look read late, on up to 32 more probes, as ``smart run`` reads them on
    the settled prefix while probes are in flight."""
    n_items, screen, runs = 1500, 60, 1500
    policy = make(screen=screen)
    rng = np.random.default_rng(11)
    # True differing counts over the batch: "a" just over the budget (150), the rest poorer.
    truth = {"a": 175, "b": 240, "c": 420, "junk": 1400}
    missed = missed_late = planned = 0
    exact = []
    for _ in range(runs):
        seen = {c: int(rng.hypergeometric(d, n_items - d, screen)) for c, d in truth.items()}
        counters = {K.REQUESTS: screen, K.PROBES: screen, K.SCREENED: screen}
        for c, k in seen.items():
            counters |= {K.probes_of(c): screen, K.agreements(c): screen - k}
            counters |= {K.screen_calls(c): screen, K.screen_cost(c): screen * COSTS[c]}
        counters |= {K.screen_calls(REF): screen, K.screen_cost(REF): screen * COSTS[REF]}
        plan = policy._plan(TaskState.from_counters(counters))
        if plan is None or not plan.looks:
            continue
        ((c, looks),) = plan.looks.items()
        planned += 1
        rest, left = n_items - screen, truth[c] - seen[c]
        exact.append(look_error(looks, left) / looks.alpha)
        order = rng.permutation(rest)[: looks.last + 32] < left  # the fresh probes, in order
        cum = np.cumsum(order)
        k = cum[np.array(looks.sizes) - 1]
        missed += any(
            looks.certifies(int(kj), n) and left - kj > looks.budget
            for kj, n in zip(k, looks.sizes, strict=True)
        )
        # Read late, as on a settled prefix with probes in flight: each look on its first
        # n + lag probes (the claim then covers the items outside those).
        late = np.array(looks.sizes) + rng.integers(0, 33, len(looks.sizes))
        missed_late += any(
            looks.certifies(int(cum[m - 1]), int(m)) and left - cum[m - 1] > looks.budget
            for m in late
        )
    assert planned > runs / 2  # the looks were planned in most runs, so the check is exercised
    assert np.mean(exact) > 0.5  # at the threshold: the looks' worst case is near
    alpha = 0.05 * LOOK_SHARE
    for wrong in (missed, missed_late):
        assert wrong / planned <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / planned), (
            missed,
            missed_late,
            planned,
        )


@pytest.mark.slow
def test_realized_disagreement_stays_within_epsilon_at_the_threshold():
    """The whole policy, 300 batches of 1,500 items: the cheap leader agrees exactly at
    1 - epsilon, so every batch that routes to it is at the edge of the budget. The share of
    batches whose realized disagreement exceeds epsilon stays within delta."""
    eps, delta, runs = 0.10, 0.05, 300
    rates = {"a": 1 - eps, "b": 0.85, "c": 0.7, "junk": 0.0}
    over = routed = 0
    for seed in range(runs):
        run = simulate(make(epsilon=eps, delta=delta), rates, seed=seed)
        over += run.differing > eps * 1500
        routed += run.counters.get(K.routed("a"), 0.0) > 0
    assert routed > runs / 3
    assert over / runs <= delta + 2 * math.sqrt(delta * (1 - delta) / runs), (over, runs)


@pytest.mark.slow
def test_screening_saves_more_than_the_plain_plan_where_certifying_is_hard():
    """Eight cheap candidates, the best a little above the target (0.925 at epsilon 0.10, as
    arc_challenge's best): the plain plan splits delta eight ways and needs many probes to
    certify it; screening narrows to it and certifies it with all of delta and a look. Over 8
    batches the screened plan's median cost is lower, and no batch exceeds epsilon."""
    many = {f"m{i}": 0.0002 + 0.00005 * i for i in range(7)}
    costs = {**COSTS, **many}
    rates = {"a": 0.925, **{m: 0.75 + 0.02 * i for i, m in enumerate(many)}}
    cands = ["a", *many]
    args = dict(
        task="t", reference=REF, candidates=cands, epsilon=0.1, delta=0.05, prior_costs=costs,
        batch_size=1500,
    )  # fmt: skip
    screened, plain = [], []
    for seed in range(8):
        s = simulate(ScreenedBatchPolicy(**args), rates, seed=seed, costs=costs)
        p = simulate(BatchPlanPolicy(**args), rates, seed=seed, costs=costs)
        assert s.differing <= 150 and p.differing <= 150
        screened.append(s.cost)
        plain.append(p.cost)
    assert float(np.median(screened)) < float(np.median(plain)), (screened, plain)


def test_screening_evidence_is_the_whole_less_certification():
    from smart_core.policy.screened_batch import _screening_evidence

    state = TaskState(
        evidence={"a": Evidence(compared=50, agreed=45, open=2)},
        cert_evidence={"a": Evidence(compared=20, agreed=19, open=1)},
    )
    ev = _screening_evidence(state, "a")
    assert (ev.compared, ev.agreed, ev.open) == (30, 26, 1)
