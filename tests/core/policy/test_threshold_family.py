"""Threshold families in the online mix: one share of delta, fixed-sequence bounds, one epoch.

The validity claim is checked by simulation at the threshold through the policy's own view: a
ten-member family sharing its probes (as a threshold grid does: the members' differing answers
are nested), four members sitting exactly at the grid's four levels, one exact look. The
family-wise error (some member's bound reaching its true agreement) stays within delta, where
certifying each member on its own at the family's share errs several times as often.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from smart_core.policy import OnlineMixPolicy, policy_for
from smart_core.policy import keys as K
from smart_core.policy.base import split_delta
from smart_core.policy.threshold_family import FAMILY_LEVELS, ThresholdFamilies
from smart_core.stats.confidence import BetaMixtureSequence, ClopperPearsonBound
from smart_core.stats.fixed_sequence import q_grid_for
from smart_core.task.config import SmartConfig

REF = "gpt-4o"
MINI = "gpt-4o-mini"
#: Ten members, most conservative first; four sit exactly at the grid's levels for eps 0.05
#: (0.95, 0.90, 0.80, 0.60): the worst case for a certificate.
RATES = [0.99, 0.97, 0.96, 0.95, 0.92, 0.90, 0.85, 0.80, 0.70, 0.60]
MEMBERS = [f"cascade:{MINI}[logprob>={1 - i / 20:g}]>ref" for i in range(len(RATES))]


def _policy(members=MEMBERS, *, delta=0.05, bound=None, **kw) -> OnlineMixPolicy:
    # a lower threshold accepts more cheap answers: it escalates less and costs less
    costs = {REF: 1.0, MINI: 0.02} | {m: 0.6 - 0.05 * i for i, m in enumerate(members)}
    return OnlineMixPolicy(
        task="t",
        reference=REF,
        candidates=[MINI, *members],
        epsilon=0.05,
        delta=delta,
        prior_costs=costs,
        bound=bound,
        families=[members],
        **kw,
    )


def _counters(probes: int, agreed: dict[str, int]) -> dict[str, float]:
    counters = {K.REQUESTS: probes, K.PROBES: probes, K.routed(REF): probes}
    for route, k in agreed.items():
        counters[K.probes_of(route)] = probes
        counters[K.agreements(route)] = k
    return counters


def test_a_family_takes_one_share_of_delta_and_each_member_all_of_it() -> None:
    alphas = split_delta(0.06, ["a", "b", "c", "d", "e"], None, [("c", "d", "e")])
    assert alphas == pytest.approx({"a": 0.02, "b": 0.02, "c": 0.02, "d": 0.02, "e": 0.02})
    weighted = split_delta(0.06, ["a", "b", "c"], {"a": 1.0, "b": 2.0, "c": 1.0}, [("b", "c")])
    assert weighted == pytest.approx({"a": 0.02, "b": 0.04, "c": 0.04})
    assert _policy().alphas == pytest.approx(dict.fromkeys([MINI, *MEMBERS], 0.025))


def test_groups_no_larger_than_the_grid_stay_plain_routes() -> None:
    small = MEMBERS[:FAMILY_LEVELS]
    policy = _policy(small)
    assert not policy.families
    assert policy.alphas == pytest.approx(dict.fromkeys([MINI, *small], 0.05 / (1 + len(small))))
    unknown = ThresholdFamilies([[*MEMBERS, "not-a-candidate"]], MEMBERS, 0.05)
    assert not unknown.groups


@pytest.mark.parametrize("seed", range(20))
def test_member_bounds_are_the_grid_levels_of_their_own_bounds_at_one_levels_share(seed) -> None:
    rng = random.Random(seed)
    probes = rng.randint(50, 4000)
    agreed = {r: rng.randint(int(probes * 0.55), probes) for r in [MINI, *MEMBERS]}
    policy = _policy()
    lower = policy.view(_counters(probes, agreed)).lower
    bound = policy.bound
    alpha = policy.alphas[MEMBERS[0]] / FAMILY_LEVELS
    grid = q_grid_for(0.05, FAMILY_LEVELS)
    floor = math.inf
    for m in MEMBERS:
        floor = min(floor, bound.lower(agreed[m], probes, alpha))
        assert lower[m] == next((q for q in grid if floor >= q), 0.0)
    # a route outside the family keeps its own continuous bound at its own share
    assert lower[MINI] == pytest.approx(bound.lower(agreed[MINI], probes, policy.alphas[MINI]))


def test_a_family_leaves_the_other_routes_a_larger_share_and_a_tighter_bound() -> None:
    """Beside a ten-member grid, the model's share of delta is half of it (two units) instead
    of an eleventh, so its bound on the same counts is tighter."""
    agreed = dict.fromkeys([MINI, *MEMBERS], 2880)
    plain = OnlineMixPolicy(
        task="t",
        reference=REF,
        candidates=[MINI, *MEMBERS],
        epsilon=0.05,
        delta=0.05,
        prior_costs={REF: 1.0} | dict.fromkeys([MINI, *MEMBERS], 0.1),
    )
    family = _policy()
    assert family.alphas[MINI] == pytest.approx(0.025)
    assert plain.alphas[MINI] == pytest.approx(0.05 / 11)
    counters = _counters(3000, agreed)
    assert family.view(counters).lower[MINI] > plain.view(counters).lower[MINI]


def _nested_counts(rng: np.random.Generator, n: int, rates) -> list[int]:
    """Agreements of members sharing ``n`` probes whose differing answers are nested (a lower
    threshold accepts more cheap answers, so it differs wherever a higher one does, and more)."""
    u = rng.random(n)
    return [int((u < r).sum()) for r in rates]


def test_family_bounds_from_the_policy_hold_at_the_threshold() -> None:
    """2,000 streams, one exact look at 1,500 shared probes (Clopper-Pearson, so a member at a
    level is certified about as often as the test allows): the policy's family bounds reach
    some member's true agreement in at most delta of the streams (plus three standard errors);
    each member certified on its own at the family's share, as a union bound at the family's
    share would do, errs at least twice as often, so the check can tell the two apart."""
    streams, n, delta = 2000, 1500, 0.05
    policy = _policy(MEMBERS, delta=delta, bound=ClopperPearsonBound())
    alpha = policy.alphas[MEMBERS[0]]
    grid = q_grid_for(0.05, FAMILY_LEVELS)
    cp = ClopperPearsonBound()
    rng = np.random.default_rng(7)
    family_errors = alone_errors = 0
    for _ in range(streams):
        counts = _nested_counts(rng, n, RATES)
        agreed = dict(zip(MEMBERS, counts, strict=True)) | {MINI: n // 2}
        lower = policy.view(_counters(n, agreed)).lower
        family_errors += any(lower[m] >= r for m, r in zip(MEMBERS, RATES, strict=True))
        alone = [next((q for q in grid if cp.lower(k, n, alpha) >= q), 0.0) for k in counts]
        alone_errors += any(b >= r for b, r in zip(alone, RATES, strict=True))
    rate, alone_rate = family_errors / streams, alone_errors / streams
    print(f"\nfamily-wise error {rate:.3f} (each member alone: {alone_rate:.3f}), delta {delta}")
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / streams)
    assert alone_rate >= 2 * rate


def test_a_family_restarts_as_one_when_a_members_detector_fires() -> None:
    """Drift detection: one member's agreement collapses; every member of its family moves to
    a new epoch with it (so the family's fixed sequence stays one test per epoch), the model
    outside the family stays where it is."""
    policy = _policy(drift=True, expected_requests=100_000)
    good = {r: 1980 for r in [MINI, *MEMBERS]}
    policy.view(_counters(2000, good))  # the detectors start from here
    later = dict(good)
    for r in good:
        later[r] += 990
    later[MEMBERS[0]] = 1980 + 600  # 400 of its last 1,000 probes differ
    view = policy.view(_counters(3000, later))
    assert set(view.restarted) == set(MEMBERS)
    decision = policy.decide_from(view, _counters(3000, later), random.Random(0))
    for m in MEMBERS:
        assert decision.increments.get(K.epoch(m)) == 1.0
    assert K.epoch(MINI) not in decision.increments


def test_config_cascade_grids_become_a_family_online_when_asked() -> None:
    thresholds = [0.99, 0.98, 0.97, 0.95, 0.9, 0.8]
    config = SmartConfig(
        task="t",
        reference=REF,
        candidates=[MINI],
        epsilon=0.05,
        cascades=[{"steps": [{"model": MINI, "scorer": "logprob", "threshold": thresholds}]}],
    )
    assert not policy_for(config).families  # the union bound unless asked
    config = config.model_copy(update={"threshold_families": "fixed-sequence"})
    policy = policy_for(config)
    assert isinstance(policy, OnlineMixPolicy)
    (family,) = policy.families.groups
    assert [policy.alphas[m] for m in family] == [pytest.approx(0.025)] * len(thresholds)
    assert family == tuple(c.name for c in config.cascade_list())
    assert isinstance(policy.bound, BetaMixtureSequence)
