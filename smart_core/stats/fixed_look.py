"""One look at a sample size fixed in advance: the exact bound for sampling without replacement.

A bound valid at every sample size (:mod:`smart_core.stats.confidence`) pays for the freedom to
look at any time: at a given size it is wider than a bound read once. When the size is fixed
before the sample is drawn (the screening stage fixes it from its own data, before any
certification probe: :mod:`smart_core.policy.screened_batch`), the exact hypergeometric bound
applies. For a candidate at 0.913 and a batch of 1,484 items, one look certifies the rest of the
batch after about 300 probes where the anytime bound needs about 500.

The unknown is the count ``D`` of differing answers among ``population`` items; ``n`` of them
were drawn uniformly without replacement and ``k`` differ. ``D`` is ruled out when seeing ``k``
or fewer differing answers would have had chance at most ``alpha`` under it, so the largest
``D`` not ruled out bounds the count with probability at least ``1 - alpha``.
"""

from __future__ import annotations

import math
from functools import lru_cache

from scipy.stats import hypergeom

__all__ = ["look_size", "max_differing"]


@lru_cache(maxsize=65536)
def max_differing(k: int, n: int, population: int, alpha: float) -> int:
    """The largest count of differing answers among ``population`` items not ruled out by ``k``
    differing in a uniform sample of ``n`` drawn without replacement (one-sided, level
    ``alpha``)."""
    if not 0 <= k <= n <= population:
        raise ValueError(
            f"need 0 <= k <= n <= population, got k={k}, n={n}, population={population}"
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return _last_plausible(k, n, population, alpha, guess=None)


def _last_plausible(k: int, n: int, population: int, alpha: float, guess: int | None) -> int:
    """:func:`max_differing` without its checks, searched from ``guess`` when one is given.

    ``P(X <= k | D)`` falls as ``D`` grows, so the answer is the one ``D`` where it crosses
    ``alpha``: bisection finds it from anywhere. Close sample sizes have close answers, so a
    search galloping out from the previous answer needs a few evaluations of the (costly, at
    thousands of probes) hypergeometric tail where a cold bisection over the population needs
    about ``log2(population)``."""
    lo, hi = k, population - (n - k)  # D >= k seen; at most n - k of the sample agree

    def plausible(d: int) -> bool:
        return hypergeom.cdf(k, population, d, n) > alpha

    if guess is not None and lo < guess < hi:
        step = 1
        if plausible(guess):
            lo = guess
            while lo + step < hi and plausible(lo + step):
                lo, step = lo + step, 2 * step
            hi = min(hi, lo + step)
            if hi == population - (n - k) and plausible(hi):
                return hi
        else:
            hi = guess
            while hi - step > lo and not plausible(hi - step):
                hi, step = hi - step, 2 * step
            lo = max(lo, hi - step)
    elif plausible(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if plausible(mid):
            lo = mid
        else:
            hi = mid
    return lo


def look_size(
    rate: float, population: int, budget: float, alpha: float, *, most: int | None = None
) -> int | None:
    """The smallest sample size at which, if a share ``rate`` of the sample agrees, one look
    bounds the differing answers among the unsampled items by ``budget``; ``None`` if no size up
    to ``most`` (default: half the population) does."""
    most = population // 2 if most is None else min(most, population - 1)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    guess: int | None = None

    def passes(m: int) -> bool:
        nonlocal guess
        km = math.ceil((1.0 - rate) * m)
        guess = _last_plausible(km, m, population, alpha, guess)
        return guess - km <= budget

    n = 20
    while n <= most:
        if passes(n):
            # Refine down to the smallest passing size within the last step.
            for m in range(max(20, int(n / 1.1)), n + 1):
                if passes(m):
                    return m
            return n
        n = math.ceil(n * 1.1)
    return None
