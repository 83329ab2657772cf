"""Drift: the change detector, the delta schedule of restarts, and the promise under shift.

The validity claim of restarts is tested by simulation at the threshold: streams whose true
agreement sits exactly at p are restarted at data-dependent times chosen to favour a false
certificate (each time the epoch looks unluckily poor), and across all epochs the bounds must
exceed p in at most alpha of streams. The serving tests go through the public SmartRouter.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random

import numpy as np
import pytest

from smart_core import Answer, MemoryStore, SmartConfig, SmartRouter, Usage
from smart_core.policy import keys as K
from smart_core.stats.confidence import make_confidence_sequence
from smart_core.stats.drift import (
    DRIFT_THRESHOLD,
    CusumState,
    cusum,
    drift_alternative,
    epoch_share,
)

REF, MINI = "gpt-4o", "gpt-4o-mini"


# --- the schedule and the detector ----------------------------------------------------------


def test_epoch_shares_are_fixed_in_advance_and_spend_exactly_the_routes_delta():
    shares = [epoch_share(e) for e in range(60)]
    assert shares[0] == 0.95
    assert all(a > b > 0 for a, b in itertools.pairwise(shares))
    assert math.isclose(sum(shares), 1.0, rel_tol=1e-12)
    with pytest.raises(ValueError, match="epoch"):
        epoch_share(-1)


def test_cusum_grows_on_a_drop_resets_on_good_batches_and_ignores_agreement_at_the_bound():
    p0, q = 0.95, drift_alternative(0.95, 0.05)
    assert q == pytest.approx(0.925)
    assert cusum([], p0, q) == 0.0
    good = [(25.0, 25.0)] * 20
    assert cusum(good, p0, q) == 0.0  # all agreements: evidence against a drop, floored at 0
    bad = [(20.0, 25.0)] * 4  # 80 % agreement, well below the bound
    assert cusum(bad, p0, q) > DRIFT_THRESHOLD
    assert cusum(bad[:1], p0, q) < cusum(bad[:2], p0, q) < cusum(bad[:3], p0, q)
    assert cusum(bad + good, p0, q) < cusum(bad, p0, q)  # recovers once agreement is back
    # A drop seen long ago, followed by plenty of good windows, leaves nothing behind.
    assert cusum(bad[:1] + [(25.0, 25.0)] * 10, p0, q) == 0.0
    assert cusum(bad, 0.0, q) == 0.0  # no bound, nothing to defend


def test_detector_false_alarms_at_the_bound_are_rare():
    """Agreement exactly at the bound the mix relies on (the worst case for false alarms): over
    200 streams of 2,000 probes, each taken in one at a time as a process sees them between its
    decisions, the detector fires in few of them. A false alarm only costs re-profiling, but it
    must not be routine."""
    rng = np.random.default_rng(7)
    p0 = 0.95
    q = drift_alternative(p0, 0.05)
    fired = 0
    for _ in range(200):
        state = CusumState(0.0, 0.0)
        compared = agreed = 0.0
        for outcome in rng.random(2000) < p0:
            compared += 1.0
            agreed += float(outcome)
            if state.update(compared, agreed, p0, q) >= DRIFT_THRESHOLD:
                fired += 1
                break
    print(f"\nfalse alarms at the bound: {fired}/200 streams of 2,000 probes")
    assert fired <= 0.15 * 200


def test_a_detector_takes_in_only_what_arrived_since_it_last_looked():
    p0, q = 0.95, 0.925
    state = CusumState(100.0, 100.0)  # joined late: the history before it is not replayed
    assert state.update(100.0, 100.0, p0, q) == 0.0
    bad = state.update(125.0, 105.0, p0, q)  # 25 new outcomes, 20 agreeing
    assert bad == pytest.approx(cusum([(5.0, 25.0)], p0, q)) and bad > 0
    assert state.update(125.0, 105.0, p0, q) == bad  # nothing new, nothing changes
    assert state.update(10.0, 10.0, p0, q) == 0.0  # counters went back: start over


@pytest.mark.slow
def test_restarted_bounds_hold_at_the_threshold_whenever_the_restarts_happen():
    """2,000 streams with the true agreement exactly p = 0.95 (alpha = 0.05, 4,000 probes each).
    An adversary restarts the route's epoch whenever the current epoch looks poor (its mean is
    below p after 100 probes), up to 6 times, so every restart is a fresh chance for a lucky
    epoch to certify above p. With the fixed schedule the union over epochs still fails in at
    most alpha of streams (2,000 streams tell 5 % from 10 %; the test allows 7 %)."""
    p, alpha, horizon, streams = 0.95, 0.05, 4_000, 2_000
    bound = make_confidence_sequence("anytime", 0.05, None)
    # critical[e][n]: the fewest agreements in n probes whose bound exceeds p, at epoch e.
    critical = []
    for e in range(7):
        a = alpha * epoch_share(e)
        row, s = [0], 0
        for n in range(1, horizon + 1):
            s = min(max(s, 0), n + 1)
            while s > 0 and bound.lower(s - 1, n, a) > p:
                s -= 1
            while s <= n and bound.lower(s, n, a) <= p:
                s += 1
            row.append(s)
        critical.append(row)
    rng = np.random.default_rng(11)
    failed = 0
    for _ in range(streams):
        draws = rng.random(horizon) < p
        epoch, n, s = 0, 0, 0
        for x in draws:
            n += 1
            s += int(x)
            if s >= critical[epoch][n]:
                failed += 1
                break
            if epoch < 6 and n >= 100 and s < p * n:
                epoch, n, s = epoch + 1, 0, 0
    rate = failed / streams
    print(f"\nrestarted bounds above the truth: {failed}/{streams} streams ({rate:.3%})")
    assert rate <= 0.07


# --- through the router -------------------------------------------------------------------


def _shifted(seed: int, before: float, after: float, shift_at: int, requests: int):
    rng = random.Random(seed)
    draws = [rng.random() for _ in range(requests)]

    def agrees(x: int) -> bool:
        return draws[x] < (before if x < shift_at else after)

    async def reference(x):
        return Answer(text=f"r{x}", usage=Usage(1000, 100))

    async def candidate(x):
        return Answer(text=f"r{x}" if agrees(x) else "other", usage=Usage(1000, 100))

    return {REF: reference, MINI: candidate}, agrees


def _serve(detection: bool, seed: int, *, before=0.99, after=0.85, shift_at=6000, n=12000):
    endpoints, _ = _shifted(seed, before, after, shift_at, n)
    config = SmartConfig(
        task="t",
        epsilon=0.05,
        delta=0.05,
        reference=REF,
        candidates=[MINI],
        expected_requests=n,
        audit_rate=0.05,
        drift_detection=detection,
    )
    router = SmartRouter(config, endpoints, store=MemoryStore(), seed=seed, wait_for_probes=True)
    restarts: list[int] = []

    async def go():
        epoch = 0.0
        for x in range(n):
            await router.arun(x)
            now = router.store.read("t").get(K.epoch(MINI), 0.0)
            if now > epoch:
                restarts.append(x)
                epoch = now

    asyncio.run(go())
    mix = router.ledger().mix
    end_agreement = mix.get(REF, 0.0) + mix.get(MINI, 0.0) * after
    return restarts, end_agreement, router


@pytest.mark.slow
def test_a_drop_in_agreement_restarts_the_candidate_and_the_mix_recovers():
    """A candidate agreeing on 99 % of requests drops to 85 % at request 6,000 (audits at 5 %).
    Without detection the bound over all history, held up by the long stretch before the
    shift, still gives it too much traffic at the end (the promise broken); with detection it
    is restarted after the shift, re-profiled on fresh probes only, and the mix in force at the
    end meets 1 - epsilon again."""
    restarts, end_agreement, router = _serve(True, seed=4)
    assert restarts and all(x >= 6000 for x in restarts), restarts
    assert end_agreement >= 0.95
    counters = router.store.read("t")
    assert counters[K.epoch_probes(MINI, 1)] > 0  # the new epoch has its own probes
    _, end_without, _ = _serve(False, seed=4)
    assert end_without < 0.95


@pytest.mark.slow
def test_with_detection_the_mix_at_the_end_of_a_shift_meets_the_target_in_all_but_delta():
    """40 deployments with a drop from 99 % to 85 % at a random request in [5,000, 7,000]:
    with detection, the mix in force at the end breaks the target in at most a few of them
    (the delta of the new epoch's bound); without, in most."""
    runs, bad_on, bad_off = 40, 0, 0
    for seed in range(runs):
        shift = random.Random(seed).randrange(5000, 7000)
        _, on, _ = _serve(True, seed, shift_at=shift)
        _, off, _ = _serve(False, seed, shift_at=shift)
        bad_on += on < 0.95
        bad_off += off < 0.95
    print(f"\nend-of-run violations: {bad_on}/{runs} with detection, {bad_off}/{runs} without")
    assert bad_on <= 0.1 * runs
    assert bad_off >= 0.5 * runs
