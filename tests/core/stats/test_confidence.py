"""Confidence bounds on a route's agreement with the reference (smart_core.stats.confidence).

The headline guarantee of SMART rests on these bounds: with probability at least 1 - delta the
anytime lower bound never exceeds the true agreement, *however often it is looked at*. The
coverage tests below check that claim by simulation against the real implementation, and
show that the fixed-sample Clopper-Pearson rule does not have it.

Simulations are made fast without replacing the code under test: for fixed t, ``lower(S, t)``
is nondecreasing in S (asserted below), so "the bound exceeds p at time t" is the event
``S_t >= S*(t)`` for a critical count S*(t) found with the real ``lower``. Streams are then
simulated with numpy and compared against S*(t).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats

from smart_core.stats.confidence import (
    BetaMixtureSequence,
    ClopperPearsonBound,
    ConfidenceSequence,
    FinitePopulationSequence,
    make_confidence_sequence,
)
from smart_core.stats.repeated_looks import critical_counts, exact_miss_probability

ALPHA = 0.05
HORIZON = 10_000
# The true failure probabilities are about 0.04 (see the exact values below), so with 2,000
# streams the simulated rate would sit only ~1.5 standard errors under alpha; 8,000 streams
# make the check robust to the seed at a cost of a few seconds.
N_STREAMS = 8_000
CHUNK = 500  # streams simulated at once: 500 x 10,000 booleans/int32 keeps memory small


# (p, epsilons whose prior is tried at that p): eps = 0.05 everywhere, plus eps = 1 - p at the
# two extremes (prior centred on 0.90 for p = 0.80, on 0.995 for p = 0.99), to show the choice
# of prior affects only tightness, never validity.
COVERAGE_CASES: list[tuple[float, tuple[float, ...]]] = [
    (0.80, (0.05, 0.20)),
    (0.90, (0.05,)),
    (0.95, (0.05,)),
    (0.99, (0.05, 0.01)),
]


# --- helpers -------------------------------------------------------------------------------


def miss_flags(
    p: float,
    horizon: int,
    crits: Sequence[np.ndarray],
    n_streams: int,
    seed: int,
    look_every: int = 1,
) -> list[np.ndarray]:
    """For each critical-count array, which streams ever reach S_t >= S*(t) at a look.

    Streams are i.i.d. Bernoulli(p) of length ``horizon``; looks are at t = look_every,
    2 * look_every, ..., horizon (``crits`` are indexed by look). The same streams serve every
    array in ``crits``.
    """
    rng = np.random.default_rng(seed)
    flags = [np.zeros(n_streams, dtype=bool) for _ in crits]
    for start in range(0, n_streams, CHUNK):
        rows = min(CHUNK, n_streams - start)
        hits = rng.random((rows, horizon), dtype=np.float32) < np.float32(p)
        sums = np.cumsum(hits, axis=1, dtype=np.int32)[:, look_every - 1 :: look_every]
        for flag, crit in zip(flags, crits, strict=True):
            flag[start : start + rows] = (sums >= crit[None, :]).any(axis=1)
    return flags


# --- 1. anytime coverage -------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.05, 0.20, 0.01])
def test_lower_bound_is_nondecreasing_in_successes(epsilon: float) -> None:
    """Guards the premise of the fast coverage simulation: for fixed t, lower(S, t) is
    nondecreasing in S (and upper too), checked densely over all S at a sample of t values."""
    bound = BetaMixtureSequence.for_target(epsilon)
    for t in (1, 2, 3, 7, 30, 100, 333, 1000, 4321, HORIZON):
        lows = np.array([bound.lower(s, t, ALPHA) for s in range(t + 1)])
        assert np.all(np.diff(lows) >= 0), (epsilon, t)
    for t in (1, 5, 100, 1000):
        ups = np.array([bound.upper(s, t, ALPHA) for s in range(t + 1)])
        assert np.all(np.diff(ups) >= 0), (epsilon, t)


@pytest.mark.slow
@pytest.mark.parametrize(("p", "epsilons"), COVERAGE_CASES, ids=lambda v: str(v))
def test_anytime_lower_bound_covers_under_continuous_monitoring(
    p: float, epsilons: tuple[float, ...]
) -> None:
    """Guards the headline guarantee: checking the anytime lower bound after EVERY one of
    10,000 observations, the share of 8,000 Bernoulli(p) streams on which it ever exceeds the
    true p stays <= alpha = 0.05, whatever epsilon the prior was centred for. The exact
    probability of that event (computed from the same critical counts) is <= alpha too, and
    the simulation agrees with it, which checks the simulation machinery itself."""
    ts = range(1, HORIZON + 1)
    crits = [
        critical_counts(BetaMixtureSequence.for_target(e).lower, p, ts, ALPHA) for e in epsilons
    ]
    for crit in crits:
        # S*(t) lies in [0, t + 1] (t + 1: no count pushes the bound above p), and after one
        # observation even a success cannot: the bound needs evidence before it exceeds p.
        assert np.all(crit >= 0) and np.all(crit <= np.arange(2, HORIZON + 2))
        assert crit[0] == 2
    seed = 20_240_000 + round(p * 1000)
    flags = miss_flags(p, HORIZON, crits, N_STREAMS, seed)
    for eps, crit, flag in zip(epsilons, crits, flags, strict=True):
        rate = float(flag.mean())
        exact = exact_miss_probability(p, crit, ts)
        se = math.sqrt(max(exact * (1 - exact), 1e-4) / N_STREAMS)
        print(
            f"anytime p={p} eps={eps}: failure rate {rate:.4f} over {N_STREAMS} streams "
            f"(exact {exact:.4f})"
        )
        assert rate <= ALPHA, (p, eps, rate)
        assert exact <= ALPHA, (p, eps, exact)
        assert abs(rate - exact) <= 4 * se, (p, eps, rate, exact)


# --- 2. Clopper-Pearson is not anytime-valid ----------------------------------------------


def test_clopper_pearson_fails_under_repeated_looks_but_holds_at_fixed_n() -> None:
    """Guards the documented caveat: the SMART paper's rule (Clopper-Pearson re-checked every 10
    observations up to 2,000) exceeds the true p = 0.9 on far more than alpha = 5 % of
    streams, while at a single pre-set n = 500 its miss rate is at most alpha (exactly, and within
    simulation error) -- so it is a valid fixed-n bound, not a confidence sequence."""
    p, every, horizon, n_streams, fixed_n = 0.9, 10, 2_000, 4_000, 500
    cp = ClopperPearsonBound()
    ts = list(range(every, horizon + 1, every))
    # Start each search at the exact answer from scipy (P(Bin(t, p) >= S) < alpha); the real
    # implementation certifies (or corrects) every value.
    guesses = []
    for t in ts:
        s = np.arange(t + 2)
        sf = stats.binom.sf(s - 1, t, p)
        guesses.append(int(np.argmax(sf < ALPHA)) if (sf < ALPHA).any() else t + 1)
    crit = critical_counts(cp.lower, p, ts, ALPHA, guesses=guesses)

    k_fixed = ts.index(fixed_n)
    exact_fixed = float(stats.binom.sf(crit[k_fixed] - 1, fixed_n, p))
    assert exact_fixed <= ALPHA

    # The fixed-n rule looks only at t = 500: a critical count no stream can reach elsewhere.
    crit_fixed = np.asarray(ts) + 1
    crit_fixed[k_fixed] = crit[k_fixed]
    anytime_flag, fixed_flag = miss_flags(
        p, horizon, [crit, crit_fixed], n_streams, seed=7, look_every=every
    )

    anytime_rate = float(anytime_flag.mean())
    fixed_rate = float(fixed_flag.mean())
    exact_anytime = exact_miss_probability(p, crit, ts)
    se = math.sqrt(ALPHA * (1 - ALPHA) / n_streams)
    print(
        f"clopper-pearson p={p}: repeated-look failure rate {anytime_rate:.4f} "
        f"(exact {exact_anytime:.4f}), "
        f"fixed n={fixed_n}: {fixed_rate:.4f} (exact {exact_fixed:.4f})"
    )
    assert anytime_rate > 0.10
    assert exact_anytime > 0.10
    assert fixed_rate <= ALPHA + 3 * se


# --- 3. exactness and basic properties ------------------------------------------------------

CP_GRID = [
    (s, n)
    for n in (1, 2, 3, 10, 37, 100, 1000)
    for s in sorted({0, 1, n // 3, n // 2, (9 * n) // 10, n - 1, n})
    if 0 <= s <= n
]


@pytest.mark.parametrize("alpha", [0.3, 0.05, 0.0125, 0.001])
def test_clopper_pearson_matches_scipy_beta_quantiles(alpha: float) -> None:
    """Guards the hand-written incomplete-beta inversion: CP lower/upper equal
    scipy.stats.beta.ppf (alpha; S, n-S+1) and (1-alpha; S+1, n-S), edges S=0 -> 0, S=n -> 1."""
    cp = ClopperPearsonBound()
    for s, n in CP_GRID:
        want_lo = 0.0 if s == 0 else float(stats.beta.ppf(alpha, s, n - s + 1))
        want_up = 1.0 if s == n else float(stats.beta.ppf(1 - alpha, s + 1, n - s))
        assert cp.lower(s, n, alpha) == pytest.approx(want_lo, abs=1e-10), (s, n)
        assert cp.upper(s, n, alpha) == pytest.approx(want_up, abs=1e-10), (s, n)
    assert cp.lower(0, 50, alpha) == 0.0
    assert cp.upper(50, 50, alpha) == 1.0
    assert cp.lower(50, 50, alpha) == pytest.approx(alpha ** (1 / 50), abs=1e-12)


@pytest.mark.parametrize("bound", [BetaMixtureSequence(), BetaMixtureSequence.for_target(0.05)])
def test_anytime_bounds_bracket_the_rate_and_tighten(bound: BetaMixtureSequence) -> None:
    """Guards the basic shape of the anytime bound: lower <= S/n <= upper; at a fixed rate
    the lower bound rises and the interval narrows as n grows; S=0 -> lower 0, S=n -> upper 1;
    no data -> the trivial interval [0, 1]."""
    for n in (1, 2, 5, 20, 100, 1000, 10_000):
        for s in sorted({0, 1, n // 2, (9 * n) // 10, n - 1, n}):
            lo, up = bound.lower(s, n, ALPHA), bound.upper(s, n, ALPHA)
            assert 0.0 <= lo <= s / n <= up <= 1.0, (s, n, lo, up)
        assert bound.lower(0, n, ALPHA) == 0.0
        assert bound.upper(n, n, ALPHA) == 1.0
    assert bound.lower(0, 0, ALPHA) == 0.0
    assert bound.upper(0, 0, ALPHA) == 1.0

    ns = [20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 100_000]
    for rate in (0.9, 0.96):
        lows = [bound.lower(round(rate * n), n, ALPHA) for n in ns]
        widths = [
            bound.upper(round(rate * n), n, ALPHA) - lo for n, lo in zip(ns, lows, strict=True)
        ]
        assert all(a < b for a, b in itertools.pairwise(lows)), lows
        assert all(a > b for a, b in itertools.pairwise(widths)), widths
        assert lows[-1] > rate - 0.005

    # A smaller alpha gives a more conservative (lower) bound.
    assert bound.lower(900, 1000, 0.001) < bound.lower(900, 1000, 0.05)


@pytest.mark.parametrize(
    "bound", [BetaMixtureSequence.for_target(0.05), ClopperPearsonBound()], ids=["anytime", "cp"]
)
@pytest.mark.parametrize(
    ("s", "n", "alpha"),
    [
        (11, 10, 0.05),
        (-1, 10, 0.05),
        (0, -1, 0.05),
        (5, 10, 0.0),
        (5, 10, 1.0),
        (5, 10, -0.1),
        (5, 10, 1.5),
    ],
)
def test_invalid_inputs_raise(bound: ConfidenceSequence, s: int, n: int, alpha: float) -> None:
    """Guards input validation: counts outside 0 <= S <= n or alpha outside (0, 1) are errors,
    not silently meaningless bounds."""
    with pytest.raises(ValueError):
        bound.lower(s, n, alpha)
    with pytest.raises(ValueError):
        bound.upper(s, n, alpha)


def test_make_confidence_sequence_and_validity_flags() -> None:
    """Guards the factory and the flags the engine trusts: 'anytime' gives the anytime-valid
    mixture centred for epsilon, 'clopper-pearson' the fixed-n bound flagged not anytime-valid,
    and an unknown method is a ValueError naming it."""
    anytime = make_confidence_sequence("anytime", 0.05)
    assert isinstance(anytime, BetaMixtureSequence)
    assert anytime == BetaMixtureSequence.for_target(0.05)
    assert anytime.anytime_valid is True and anytime.name == "anytime"
    assert isinstance(anytime, ConfidenceSequence)

    cp = make_confidence_sequence("clopper-pearson", 0.05)
    assert isinstance(cp, ClopperPearsonBound)
    assert cp.anytime_valid is False and cp.name == "clopper-pearson"
    assert isinstance(cp, ConfidenceSequence)

    assert BetaMixtureSequence().anytime_valid is True
    with pytest.raises(ValueError, match="nope"):
        make_confidence_sequence("nope", 0.05)


# --- 4. discrimination ----------------------------------------------------------------------


def test_anytime_bound_discriminates_good_and_hopeless_routes() -> None:
    """Guards usefulness, not just validity, of the default (epsilon = 0.05) bound: 2,000
    probes at 96 % agreement certify > 94 % at alpha = 0.0125, and 30 probes with no agreement
    put the upper bound below 0.5, so a hopeless candidate can be dropped early."""
    bound = make_confidence_sequence("anytime", 0.05)
    alpha = 0.0125
    assert bound.lower(1920, 2000, alpha) > 0.94
    assert bound.upper(0, 30, alpha) < 0.5
    assert bound.upper(0, 30, ALPHA) < 0.5


# -- finite population (batch mode) -----------------------------------------------------------


@pytest.mark.parametrize(("population", "epsilon"), [(200, 0.1), (500, 0.02), (1000, 0.2)])
def test_finite_population_bounds_are_the_interval_not_ruled_out(population, epsilon):
    """The bisection edges are exactly the first and last count not ruled out, and nothing
    between them is ruled out (checked against a full scan of every count)."""
    bound = FinitePopulationSequence.for_target(epsilon, population)
    for n in (1, 7, 20, 61, population // 2, population - 3):
        for s in {0, n, n // 2, int(0.9 * n), int(0.97 * n)}:
            for alpha in (0.0125, 0.05):
                kept = [g for g in range(population - n + 1) if not bound.rules_out(g, s, n, alpha)]
                lo, hi = bound.differing_bounds(s, n, alpha)
                assert kept == list(range(lo, hi + 1))


@pytest.mark.slow
@pytest.mark.parametrize(("population", "differing"), [(1000, 50), (1000, 200), (2000, 20)])
def test_finite_population_sequence_covers_the_batch_at_every_look(population, differing):
    """2,000 random orders of a batch with a known count of differing answers, the bound checked
    after every probe up to the last item: the share of orders in which the true count of
    differing unprobed answers is ever ruled out stays within alpha = 0.05 (the 3.4-standard-error
    allowance tells 5 % from 10 %)."""
    alpha, orders = 0.05, 2000
    bound = FinitePopulationSequence.for_target(0.05, population)
    rng = np.random.default_rng(differing)
    items = np.zeros(population, dtype=int)
    items[:differing] = 1
    verdict: dict[tuple[int, int], bool] = {}
    failures = 0
    for _ in range(orders):
        seen = np.cumsum(rng.permutation(items))
        for n in range(1, population):
            f = int(seen[n - 1])
            key = (n, f)
            if key not in verdict:
                verdict[key] = bound.rules_out(differing - f, n - f, n, alpha)
            if verdict[key]:
                failures += 1
                break
    rate = failures / orders
    print(f"N={population} F={differing}: ever ruled out in {rate:.2%} of orders")
    assert rate <= alpha + 3.4 * math.sqrt(alpha * (1 - alpha) / orders)


def test_finite_population_bound_tightens_as_the_batch_is_used_up():
    """At the same sample rate, the more of the batch was probed the fewer differing answers can
    hide in the rest, and a fully agreeing sample of 400 of 1,000 items leaves at most 3 % of the
    other 600 differing."""
    bound = FinitePopulationSequence.for_target(0.05, 1000)
    highs = [bound.differing_bounds(round(0.95 * n), n, 0.05)[1] for n in (50, 200, 500, 900)]
    assert highs == sorted(highs, reverse=True) and highs[0] > 100 > 20 > highs[-1]
    assert bound.differing_bounds(400, 400, 0.05)[1] <= 18
    assert bound.lower(400, 400, 0.05) >= 0.97
    with pytest.raises(ValueError, match="population"):
        FinitePopulationSequence(population=0)
