"""Fixed-sequence testing of a nested family of routes (a grid of thresholds of one scorer).

Pure properties of the functions, then the validity claim by simulation at the threshold:
2,000 streams of probes of a logprob-style family whose members share the same probes (as a
threshold grid does), one member agreeing exactly at the target q, every member's bound
checked after every probe. The family-wise error (some certified member agrees at most q, at
any look) stays under alpha, where certifying each member on its own at alpha does not; and
the fixed sequence certifies more good members than a union bound over the members.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from smart_core.stats.confidence import BetaMixtureSequence, ClopperPearsonBound
from smart_core.stats.fixed_sequence import (
    certified_prefix,
    certifying_successes,
    family_lower_bounds,
    fixed_sequence_test,
    grid_lower_bounds,
    q_grid_for,
)

BOUND = BetaMixtureSequence.for_target(0.05)


@pytest.mark.parametrize("seed", range(100))
def test_the_test_certifies_the_prefix_whose_bounds_reach_q(seed: int) -> None:
    rng = random.Random(seed)
    counts = []
    for _ in range(rng.randint(1, 8)):
        n = rng.randint(0, 400)
        counts.append((rng.randint(max(0, n - 40), n), n))
    q, alpha = rng.choice([0.8, 0.9, 0.95]), rng.choice([0.01, 0.05, 0.2])
    k = fixed_sequence_test(counts, q, alpha, BOUND)
    lowers = [BOUND.lower(s, n, alpha) if n else 0.0 for s, n in counts]
    assert k == certified_prefix(lowers, q)
    assert all(low >= q for low in lowers[:k])
    assert k == len(counts) or lowers[k] < q
    # a larger alpha never certifies less
    assert fixed_sequence_test(counts, q, min(0.5, alpha * 2), BOUND) >= k


def _random_family(rng: random.Random, *, smallest: int, worst: int):
    """Up to seven members with up to 3,000 probes each, at most a ``1/worst`` share differing;
    a grid of one to four levels and an alpha."""
    names = [f"t{i}" for i in range(rng.randint(1, 7))]
    counts = {}
    for name in names:
        n = rng.randint(smallest, 3000)
        counts[name] = (n - rng.randint(0, max(1, n // worst)) if n else 0, n)
    grid = q_grid_for(rng.choice([0.02, 0.05, 0.1]), levels=rng.randint(1, 4))
    return names, counts, grid, rng.choice([0.01, 0.05])


@pytest.mark.parametrize("seed", range(60))
def test_grid_bounds_from_members_bounds_match_the_family_bounds_from_counts(seed: int) -> None:
    names, counts, grid, alpha = _random_family(random.Random(seed), smallest=1, worst=8)
    expected = family_lower_bounds(counts, alpha, grid, BOUND)
    lowers = [BOUND.lower(*counts[n], alpha / len(grid)) for n in names]
    assert grid_lower_bounds(lowers, grid) == [expected[n] for n in names]


def test_grid_bounds_stop_at_the_first_member_below_a_level() -> None:
    grid = [0.95, 0.9, 0.8]
    # the second member misses 0.9, so the third, however good, is held at 0.8 and below
    assert grid_lower_bounds([0.97, 0.85, 0.99, 0.5], grid) == [0.95, 0.8, 0.8, 0.0]
    assert grid_lower_bounds([], grid) == []
    with pytest.raises(ValueError, match="q_grid"):
        grid_lower_bounds([0.9], [])


@pytest.mark.parametrize("seed", range(60))
def test_family_bounds_are_grid_levels_nonincreasing_along_the_order(seed: int) -> None:
    names, counts, grid, alpha = _random_family(random.Random(seed), smallest=0, worst=10)
    lowers = family_lower_bounds(counts, alpha, grid, BOUND)
    values = [lowers[n] for n in names]
    assert set(values) <= {*grid, 0.0}
    assert values == sorted(values, reverse=True)
    for q in grid:  # each level is the fixed-sequence test at alpha / G
        k = fixed_sequence_test(list(counts.values()), q, alpha / len(grid), BOUND)
        assert all(v >= q for v in values[:k])


def test_certifying_successes_is_the_smallest_count_reaching_q() -> None:
    for n in (1, 5, 50, 200, 1000):
        for q in (0.5, 0.9, 0.95):
            s = certifying_successes(n, q, 0.05, BOUND)
            if s is None:
                assert BOUND.lower(n, n, 0.05) < q
                continue
            assert BOUND.lower(s, n, 0.05) >= q
            assert s == 0 or BOUND.lower(s - 1, n, 0.05) < q


def test_bad_inputs_name_the_fix() -> None:
    with pytest.raises(ValueError, match="q must be in"):
        fixed_sequence_test([(1, 1)], 1.0, 0.05)
    with pytest.raises(ValueError, match="alpha"):
        family_lower_bounds({"a": (1, 1)}, 0.0, [0.9])
    with pytest.raises(ValueError, match="q_grid"):
        family_lower_bounds({"a": (1, 1)}, 0.05, [])
    assert q_grid_for(0.05) == pytest.approx([0.95, 0.9, 0.8, 0.6])
    assert q_grid_for(0.3) == pytest.approx([0.7, 0.4])  # levels at or below 0 are dropped


def test_a_union_over_levels_not_members() -> None:
    """Many members cost nothing: the same counts certify the same prefix however many
    uncertifiable members follow; a finer q grid (more levels) does cost alpha."""
    good = [(990, 1000), (985, 1000)]
    short = fixed_sequence_test(good, 0.95, 0.05, BOUND)
    long = fixed_sequence_test(good + [(900, 1000)] * 50, 0.95, 0.05, BOUND)
    assert short == long == 2
    cp = ClopperPearsonBound()
    one = family_lower_bounds({"a": (963, 1000)}, 0.05, [0.95], cp)["a"]
    many = family_lower_bounds({"a": (963, 1000)}, 0.05, [0.95, 0.9, 0.8, 0.7, 0.6] * 1, cp)
    assert one == 0.95 and many["a"] == 0.9  # at alpha / 5 the 0.95 level is out of reach


# --- the validity claim, by simulation at the threshold ---------------------------------------

Q, ALPHA, STREAMS, PROBES = 0.95, 0.1, 2000, 1500
# A logprob family: the cheap model's confidence c ~ U(0, 1), its answer agrees with the
# reference's with probability c; member t keeps it when c >= t, else escalates (agrees). Its
# agreement is t + (1 - t^2) / 2; T_STAR's is exactly Q. Ordered most conservative first.
T_STAR = 1.0 - math.sqrt(1.0 - 2.0 * (Q - 0.5))  # solves t + (1 - t^2)/2 = Q
THRESHOLDS = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, T_STAR, 0.65, 0.6, 0.5]
FIRST_NULL = THRESHOLDS.index(T_STAR)


def _agreement(t: float) -> float:
    return t + (1.0 - t * t) / 2.0


def _needed(alpha: float) -> np.ndarray:
    """Agreements needed to certify Q after n probes, n = 0..PROBES (inf: not reachable)."""
    out = np.full(PROBES + 1, np.inf)
    for n in range(1, PROBES + 1):
        s = certifying_successes(n, Q, alpha, BOUND)
        if s is not None:
            out[n] = s
    return out


def test_family_wise_error_stays_under_alpha_at_every_look() -> None:
    assert _agreement(T_STAR) == pytest.approx(Q)
    assert all(_agreement(t) > Q for t in THRESHOLDS[:FIRST_NULL])
    assert all(_agreement(t) < Q for t in THRESHOLDS[FIRST_NULL + 1 :])
    need_full, need_split = _needed(ALPHA), _needed(ALPHA / len(THRESHOLDS))
    rng = np.random.default_rng(20261206)
    thresholds = np.array(THRESHOLDS)
    fs_err = naive_err = 0
    fs_good = bonf_good = 0
    for chunk in range(0, STREAMS, 250):
        m = min(250, STREAMS - chunk)
        c = rng.random((m, PROBES))
        cheap_agrees = rng.random((m, PROBES)) < c
        ok = (c[:, :, None] < thresholds) | cheap_agrees[:, :, None]  # (m, PROBES, K)
        s = np.cumsum(ok, axis=1, dtype=np.int32)  # agreements after n = 1..PROBES probes
        passes = s >= need_full[1:, None]
        prefix = np.cumprod(passes, axis=2).astype(bool)  # certified by the fixed sequence
        # Error: the fixed sequence certifies a member agreeing at most Q, at some look.
        fs_err += int(prefix[:, :, FIRST_NULL:].any(axis=(1, 2)).sum())
        # Each member on its own at alpha: certifying any such member is an error.
        naive_err += int(passes[:, :, FIRST_NULL:].any(axis=(1, 2)).sum())
        # Power at the end: good members certified, fixed sequence vs a union bound.
        fs_good += int(prefix[:, -1, :FIRST_NULL].sum())
        bonf_good += int((s[:, -1, :FIRST_NULL] >= need_split[-1]).sum())
    se = math.sqrt(ALPHA * (1 - ALPHA) / STREAMS)
    fs_rate, naive_rate = fs_err / STREAMS, naive_err / STREAMS
    assert fs_rate <= ALPHA + 2 * se, fs_rate
    assert fs_rate <= naive_rate
    assert fs_good > bonf_good, (fs_good, bonf_good)


def test_at_the_threshold_the_error_is_alpha_not_k_alpha() -> None:
    """Every member exactly at Q, each with its own probes, one look with the exact binomial
    bound (where a single test's error is close to alpha): the fixed sequence errs about alpha
    of the time (only its first member can be certified wrongly first); certifying each member
    on its own errs in most streams."""
    k, n, alpha, streams = 10, 1000, 0.1, 4000
    cp = ClopperPearsonBound()
    need = next(s for s in range(n + 1) if cp.lower(s, n, alpha) >= Q)
    rng = np.random.default_rng(7)
    agreements = rng.binomial(n, Q, size=(streams, k))
    passes = agreements >= need
    fs = np.cumprod(passes, axis=1).astype(bool).any(axis=1).mean()
    naive = passes.any(axis=1).mean()
    se = math.sqrt(alpha * (1 - alpha) / streams)
    assert fs <= alpha + 2 * se, fs
    assert fs >= alpha / 2, fs  # tight: the test is not merely conservative
    assert naive > 3 * alpha, naive
    # and the functions agree with the vectorised rule on a few streams
    for row in agreements[:20]:
        counts = [(int(a), n) for a in row]
        assert fixed_sequence_test(counts, Q, alpha, cp) == certified_prefix(
            [cp.lower(a, n, alpha) for a, _ in counts], Q
        )
