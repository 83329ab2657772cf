"""Exact probability that a fixed-sample lower bound, re-checked at a schedule of looks, ever
exceeds the true agreement -- and the per-look level that keeps that probability within a budget.

For fixed t a lower bound ``lower(S, t)`` is nondecreasing in the count S of agreements, so "the
bound exceeds p at look t" is the event ``S_t >= S*(t)`` for a critical count S*(t). The law of
``S_t`` for a Bernoulli(p) stream is propagated from look to look, and the mass that crosses
S*(t) at a look is removed and summed: the probability that the bound *ever* exceeds p. No
simulation is involved; floating point underflow is the only truncation.

The Clopper-Pearson bound has a closed-form critical count by its duality with the binomial
tail: ``lower(S, t, alpha) > p`` if and only if ``P(Bin(t, p) >= S) < alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

__all__ = [
    "CHECKED_AGREEMENTS",
    "clopper_pearson_critical_counts",
    "clopper_pearson_failure",
    "corrected_clopper_pearson_alpha",
    "corrected_clopper_pearson_alphas",
    "critical_counts",
    "exact_miss_probability",
]

LowerFn = Callable[[int, int, float], float]

#: True agreements at which a corrected level is checked: the targets 1 - epsilon of the paper's
#: setup (0.80-0.98), which include the candidates' rates (0.88-0.96). Over this range the
#: failure probability falls slowly as p grows (at 0.80 it is ~1.2-1.6x that at 0.98); the
#: worst is kept.
CHECKED_AGREEMENTS: tuple[float, ...] = (0.80, 0.85, 0.90, 0.95, 0.98)

# Per-look levels tried when correcting: a geometric grid from 1e-7 to 0.45 (ratio ~1.1), so
# the level found is within 10 % of the largest one that keeps the failure within budget.
_ALPHA_GRID = np.geomspace(1e-7, 0.45, 161)
_NEGLIGIBLE = 1e-60


def critical_counts(
    lower: LowerFn,
    p: float,
    ts: Sequence[int],
    alpha: float,
    guesses: Sequence[int] | None = None,
) -> np.ndarray:
    """S*(t) = smallest S in [0, t] with ``lower(S, t, alpha) > p``, or t + 1 when none is.

    Relies on ``lower`` being nondecreasing in S for fixed t. Each value is certified with the
    given ``lower``: ``lower(S* - 1, t) <= p < lower(S*, t)``. Candidates tried first are the
    caller's guess (if any) and the previous S* and S* + 1 (S* moves by at most one per
    observation in practice); bisection is the fallback, so wrong guesses only cost time.
    """

    def exceeds(s: int, t: int) -> bool:
        return lower(s, t, alpha) > p

    def is_critical(g: int, t: int) -> bool:
        if not 0 <= g <= t + 1:
            return False
        below_ok = g == 0 or not exceeds(g - 1, t)
        return below_ok and (g == t + 1 or exceeds(g, t))

    out = np.empty(len(ts), dtype=np.int64)
    prev = 0
    for k, t in enumerate(ts):
        candidates = [guesses[k]] if guesses is not None else []
        candidates += [prev, prev + 1]
        for g in candidates:
            if is_critical(g, t):
                found = g
                break
        else:
            lo, hi = 0, t + 1  # invariant: answer in [lo, hi]; hi = t + 1 means "never"
            while lo < hi:
                mid = (lo + hi) // 2
                if exceeds(mid, t):
                    hi = mid
                else:
                    lo = mid + 1
            found = lo
        out[k] = found
        prev = found
    return out


def exact_miss_probability(p: float, crit: np.ndarray, looks: Sequence[int]) -> float:
    """P(S_t >= S*(t) at some look) for a Bernoulli(p) stream, exactly (no simulation).

    Propagates the law of S_t from look to look (a binomial step per gap between looks) and
    removes the mass that crosses the critical count at each look: the probability the bound
    ever exceeds p. Only the range of counts holding mass above 1e-60 is kept, so long horizons
    cost time in proportion to the spread of S_t, not to t; what is dropped is below 1e-50 in
    all, far under any probability reported.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    dist = np.ones(1)  # dist[i] = P(S_t = offset + i, never crossed so far)
    offset, crossed, prev_t = 0, 0.0, 0
    steps: dict[int, np.ndarray] = {}
    for k, t in enumerate(looks):
        gap = t - prev_t
        if gap < 1:
            raise ValueError("looks must be strictly increasing positive counts")
        if gap not in steps:
            steps[gap] = _binomial_pmf(gap, p)
        dist = np.convolve(dist, steps[gap])
        prev_t = t
        cut = int(crit[k]) - offset
        if cut < len(dist):
            crossed += float(dist[max(cut, 0) :].sum())
            dist = dist[: max(cut, 0)]
        nonzero = np.flatnonzero(dist > _NEGLIGIBLE)
        if len(nonzero) == 0:
            return crossed
        offset += int(nonzero[0])
        dist = dist[nonzero[0] : nonzero[-1] + 1]
    return crossed


def clopper_pearson_critical_counts(
    p: float, looks: Sequence[int], alphas: Sequence[float]
) -> np.ndarray:
    """S*(t) of the Clopper-Pearson lower bound at each look, for each per-look level.

    Returns shape (len(alphas), len(looks)): the smallest S with ``P(Bin(t, p) >= S) < alpha``
    (equivalently ``lower(S, t, alpha) > p``), t + 1 when none is. Binomial tails come from a
    table of log-factorials, summed from the top so small tails keep their precision.
    """
    alphas = np.asarray(alphas, dtype=float)
    if np.any((alphas <= 0.0) | (alphas >= 0.5)):
        raise ValueError("per-look levels must lie in (0, 0.5)")
    log_fact = _log_factorials(int(looks[-1]))
    out = np.empty((len(alphas), len(looks)), dtype=np.int64)
    log_p, log_q = math.log(p), math.log1p(-p)
    for k, t in enumerate(looks):
        sd = math.sqrt(t * p * (1.0 - p))
        # The tail at the median is >= 1/2 > alpha, so S* lies above it; beyond 15 standard
        # deviations the tail is below 1e-45, far under any level used.
        lo = max(0, math.floor(t * p) - 2)
        hi = min(t, math.ceil(t * p + 15.0 * sd) + 30)
        s = np.arange(lo, hi + 1)
        log_pmf = log_fact[t] - log_fact[s] - log_fact[t - s] + s * log_p + (t - s) * log_q
        tail = np.cumsum(np.exp(log_pmf)[::-1])[::-1]  # tail[i] = P(S >= lo + i)
        # First index whose tail is < alpha: tail is nonincreasing, so search its negation.
        idx = np.searchsorted(-tail, -alphas, side="right")
        out[:, k] = np.where(idx < len(s), lo + idx, t + 1)
    return out


def clopper_pearson_failure(p: float, horizon: int, alpha: float, every: int = 10) -> float:
    """Exact probability that the Clopper-Pearson lower bound at per-look level ``alpha``,
    checked after every ``every`` observations up to ``horizon``, ever exceeds the true p."""
    looks = list(range(every, horizon + 1, every))
    crit = clopper_pearson_critical_counts(p, looks, [alpha])[0]
    return exact_miss_probability(p, crit, looks)


def corrected_clopper_pearson_alpha(
    delta: float,
    horizon: int,
    every: int = 10,
    agreements: tuple[float, ...] = CHECKED_AGREEMENTS,
) -> float:
    """The largest per-look level (on a grid of ratio ~1.1) at which the Clopper-Pearson lower
    bound, re-checked every ``every`` observations up to ``horizon``, exceeds the true agreement
    with probability at most ``delta`` at every p in ``agreements``."""
    return corrected_clopper_pearson_alphas((delta,), horizon, every, agreements)[0]


@lru_cache(maxsize=16)
def corrected_clopper_pearson_alphas(
    deltas: tuple[float, ...],
    horizon: int,
    every: int = 10,
    agreements: tuple[float, ...] = CHECKED_AGREEMENTS,
) -> tuple[float, ...]:
    """:func:`corrected_clopper_pearson_alpha` for several budgets on one schedule of looks.

    The failure probability grows with the level, so the grid is bisected; each grid point is
    decided by the worst p, computed exactly, and shared between the budgets.
    """
    for delta in deltas:
        if not 0.0 < delta < 0.5:
            raise ValueError(f"delta must lie in (0, 0.5), got {delta}")
    looks = list(range(every, horizon + 1, every))
    crits = {p: clopper_pearson_critical_counts(p, looks, _ALPHA_GRID) for p in agreements}
    worst: dict[int, float] = {}

    def worst_failure(i: int, delta: float) -> float:
        # The worst p at grid point i, or the first p found over delta (enough to decide).
        if i not in worst:
            value = 0.0
            for p in agreements:
                value = max(value, exact_miss_probability(p, crits[p][i], looks))
                if value > max(deltas):
                    break
            worst[i] = value
        return worst[i]

    out = []
    for delta in deltas:
        lo, hi = 0, len(_ALPHA_GRID) - 1  # invariant: lo within budget, hi over it
        if worst_failure(hi, delta) <= delta:
            out.append(float(_ALPHA_GRID[hi]))
            continue
        if worst_failure(lo, delta) > delta:
            raise ValueError(f"no per-look level down to {_ALPHA_GRID[0]:g} keeps {delta}")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if worst_failure(mid, delta) <= delta:
                lo = mid
            else:
                hi = mid
        out.append(float(_ALPHA_GRID[lo]))
    return tuple(out)


def _binomial_pmf(n: int, p: float) -> np.ndarray:
    k = np.arange(n + 1)
    log_fact = _log_factorials(n)
    return np.exp(
        log_fact[n] - log_fact[k] - log_fact[n - k] + k * math.log(p) + (n - k) * math.log1p(-p)
    )


def _log_factorials(n: int) -> np.ndarray:
    """log(k!) for k = 0..n at least (read-only); sizes are rounded up to a power of two so that
    callers with many different n share a few tables."""
    return _log_factorial_table(1 << max(n, 1).bit_length())


@lru_cache(maxsize=8)
def _log_factorial_table(size: int) -> np.ndarray:
    table = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, size + 1, dtype=float)))))
    table.flags.writeable = False
    return table
