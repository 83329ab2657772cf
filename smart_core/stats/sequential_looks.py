"""Many looks at sizes fixed in advance, calibrated jointly: certifying a batch's budget early.

One look (:mod:`smart_core.stats.fixed_look`) must be sized before the certification probes from
screening's estimate of the candidate's agreement, which is rough (a few dozen probes): sized
for a pessimistic estimate it wastes probes, sized for an optimistic one it fails and leaves the
work to the bound valid at every size. Here the look is a grid of sizes ``n_1 < ... < n_J``
fixed in advance, each with a pass mark ``c_j``: the candidate is certified at the first look
where at most ``c_j`` of the ``n_j`` sampled items differ. Certifying means claiming that the
items not sampled hold at most ``budget`` differing answers.

Why many looks cost little: with ``D`` differing answers among the ``population`` items, a
certificate at look j is wrong when ``k_j <= c_j`` and ``D - k_j > budget``, so only samples with
``k_j < D - budget`` differing matter. The pass marks grow with the look's size, and a sample far
larger than the one whose pass mark is near ``D - budget`` holds far more than that many
differing answers; so for each ``D`` essentially one look can err, and the chance that *some*
look errs is barely above the chance that one does. This module computes that chance exactly:
for every ``D``, the probability that the sequential sample without replacement (the probes
are a uniformly ordered draw from the items) crosses a pass mark while ``D - k_j > budget``,
by dynamic programming over the looks (hypergeometric steps between them). The pass marks are
those of single looks at a level ``a``, with ``a`` the largest (on a bisection) at which the
worst case over ``D`` of that exact probability is at most ``alpha``.

Reading a look late is safe: the differing count only grows as the sample grows, so at ``m >=
n_j`` probes, ``k_m <= c_j`` implies ``k_{n_j} <= c_j`` and ``D - k_{n_j} >= D - k_m``: an error
read at ``m`` is an error of look j. :meth:`LookPlan.certifies` reads the look with the largest
size not above the sample's.

Pure functions of sizes and counts; the policy (``smart_core.policy.screened_batch``) decides
the sizes from screening's data alone and the share of delta.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import hypergeom

__all__ = ["LookPlan", "look_error", "plan_looks"]

#: Bisection steps for the per-look level, on a log scale from ``alpha / J`` to ``alpha`` (with
#: 40 looks, a ratio under 1.01 between the last two tried: on arc_challenge at eps 0.10, six
#: steps left about 5 % of the level, and 1.5 % of the savings, unused).
_STEPS = 9
#: Above this many counts a size's pass mark is found by bisection rather than from a table of
#: every count's tail (a table is (counts)^2 probabilities).
_TABLE_LIMIT = 2000
#: Probability mass below which a state of the dynamic programme is dropped (and counted as an
#: error, so the computed chance stays an upper bound).
_NEGLIGIBLE = 1e-14


@dataclass(frozen=True)
class LookPlan:
    """Look sizes, their pass marks, and what a pass certifies."""

    sizes: tuple[int, ...]
    #: Per size: the most differing answers in the sample that certify (``-1``: none do).
    passes: tuple[int, ...]
    population: int
    #: What a pass certifies: at most this many differing answers among the unsampled items.
    budget: int
    alpha: float
    #: The per-look level the pass marks are those of (for reports; the guarantee is ``alpha``).
    level: float

    def certifies(self, differing: int, sampled: int) -> bool:
        """Whether ``differing`` answers among ``sampled`` probes pass the look with the largest
        size not above ``sampled`` (none before the first size)."""
        j = int(np.searchsorted(self.sizes, sampled, side="right")) - 1
        return j >= 0 and differing <= self.passes[j]

    @property
    def last(self) -> int:
        return self.sizes[-1]


def plan_looks(
    sizes: Sequence[int], population: int, budget: float, alpha: float
) -> LookPlan | None:
    """Pass marks for looks at ``sizes`` (probes from a uniformly ordered ``population``) such
    that the chance that any look certifies at most ``budget`` differing unsampled answers
    wrongly is at most ``alpha``; ``None`` if no look can pass."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    sizes = tuple(sorted({int(n) for n in sizes if 0 < int(n) < population}))
    if not sizes:
        raise ValueError(f"need look sizes between 1 and population - 1 ({population - 1})")
    b = math.floor(budget)
    return _plan(sizes, int(population), b, float(alpha))


@lru_cache(maxsize=256)
def _plan(sizes: tuple[int, ...], population: int, budget: int, alpha: float) -> LookPlan | None:
    # The union bound over looks is always valid: every count up to a pass mark is ruled out
    # at the level, and the chance of a count at most t falls as D grows past budget + t + 1.
    lo, hi = alpha / len(sizes), alpha
    best = _pass_marks(sizes, population, budget, lo)
    for _ in range(_STEPS if len(sizes) > 1 else 0):
        mid = math.sqrt(lo * hi)
        marks = _pass_marks(sizes, population, budget, mid)
        if marks == best or _worst_error(sizes, marks, population, budget, alpha) <= alpha:
            lo, best = mid, marks
        else:
            hi = mid
    if max(best) < 0:
        return None
    return LookPlan(sizes, best, population, budget, alpha, lo)


def look_error(plan: LookPlan, differing: int) -> float:
    """The chance, with ``differing`` answers among the population, that some look certifies
    wrongly (an upper bound by at most the dropped mass, see :data:`_NEGLIGIBLE`)."""
    return _joint_error(plan.sizes, plan.passes, plan.population, plan.budget, int(differing))


# -- the computations ------------------------------------------------------------------------


_LOG_FACTORIALS = np.zeros(1)


def _log_factorials(n: int) -> np.ndarray:
    """``log(i!)`` for ``i`` up to at least ``n``: one table, grown by doubling."""
    global _LOG_FACTORIALS
    if len(_LOG_FACTORIALS) <= n:
        size = max(n + 1, 2 * len(_LOG_FACTORIALS))
        _LOG_FACTORIALS = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, size)))])
    return _LOG_FACTORIALS


def _hypergeom_pmf(k: np.ndarray, total: int, marked: np.ndarray, drawn: int) -> np.ndarray:
    """P(k marked among ``drawn`` drawn without replacement from ``total``, ``marked`` marked),
    elementwise over the broadcast of ``k`` and ``marked``."""
    lf = _log_factorials(total)
    k, marked = np.broadcast_arrays(np.asarray(k), np.asarray(marked))
    ok = (k >= 0) & (k <= marked) & (drawn - k >= 0) & (drawn - k <= total - marked)
    out = np.zeros(k.shape)
    kk, mm = k[ok], marked[ok]

    def log_choose(a, b):
        return lf[a] - lf[b] - lf[a - b]

    out[ok] = np.exp(
        log_choose(mm, kk) + log_choose(total - mm, drawn - kk) - log_choose(total, drawn)
    )
    return out


def _pass_marks(
    sizes: tuple[int, ...], population: int, budget: int, level: float
) -> tuple[int, ...]:
    """Per size, the single look's pass mark at ``level``: the largest ``k`` such that every
    count up to it rules out ``budget + k + 1`` differing answers (``P(X <= k) <= level``), so
    that a pass bounds the unsampled differing answers by ``budget``."""
    marks = []
    for n in sizes:
        if min(n, budget) > _TABLE_LIMIT:  # one count at a time, on a bisection
            marks.append(_pass_mark(n, population, budget, level))
            continue
        tail = _pass_tails(n, population, budget)
        over = np.nonzero(tail > level)[0]
        marks.append(int(over[0]) - 1 if len(over) else len(tail) - 1)
    return tuple(marks)


def _pass_mark(n: int, population: int, budget: int, level: float) -> int:
    """:func:`_pass_marks` for one size of a large batch: the count where ``P(X <= k | D =
    budget + k + 1)`` crosses ``level``, found by bisection (it grows with ``k``)."""

    def passes(k: int) -> bool:
        marked = budget + k + 1
        return marked > population or hypergeom.cdf(k, population, marked, n) <= level

    if not passes(0):
        return -1
    lo, hi = 0, min(n, budget + 1)
    if passes(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            lo = mid
        else:
            hi = mid
    return lo


@lru_cache(maxsize=4096)
def _pass_tails(n: int, population: int, budget: int) -> np.ndarray:
    """``P(X <= k | D = budget + k + 1)`` for the counts ``k`` a pass mark can take: at most
    ``budget`` (a sample of at most half the items passes with fewer differing answers than
    that) and ``n``."""
    ks = np.arange(0, min(n, budget + 1) + 1)
    marked = budget + ks + 1
    pmf = _hypergeom_pmf(ks[None, :], population, np.minimum(marked, population)[:, None], n)
    pmf[ks[None, :] > ks[:, None]] = 0.0
    # More differing answers than items cannot be: nothing to rule out there.
    return np.where(marked > population, 0.0, pmf.sum(axis=1))


def _worst_error(
    sizes: tuple[int, ...], marks: tuple[int, ...], population: int, budget: int, alpha: float
) -> float:
    """The largest chance over ``D`` that some look certifies wrongly, computed exactly where the
    union bound over looks exceeds ``alpha`` (elsewhere the union bound, which is larger)."""
    ds = np.arange(budget + 1, population + 1)
    union = np.zeros(len(ds))
    for n, c in zip(sizes, marks, strict=True):
        if c < 0:
            continue
        top = np.minimum(c, ds - budget - 1)
        ks = np.arange(0, c + 1)
        pmf = _hypergeom_pmf(ks[None, :], population, ds[:, None], n)
        pmf[ks[None, :] > top[:, None]] = 0.0
        union += pmf.sum(axis=1)
    worst = float(union[union <= alpha].max()) if (union <= alpha).any() else 0.0
    flagged = ds[union > alpha]
    if len(flagged):
        worst = max(worst, float(_joint_errors(sizes, marks, population, budget, flagged).max()))
    return worst


def _joint_error(
    sizes: tuple[int, ...], marks: tuple[int, ...], population: int, budget: int, differing: int
) -> float:
    return float(_joint_errors(sizes, marks, population, budget, np.array([differing]))[0])


def _joint_errors(
    sizes: tuple[int, ...],
    marks: tuple[int, ...],
    population: int,
    budget: int,
    differing: np.ndarray,
) -> np.ndarray:
    """Per ``D`` in ``differing``: P(some look j has k_j <= min(c_j, D - budget - 1)). The
    sample grows from one look to the next by a hypergeometric step from the items not yet
    drawn; one row of states per ``D``, over the differing answers drawn so far."""
    d = np.asarray(differing)[:, None]
    drawn, crossed = 0, np.zeros(len(d))
    probs = np.ones((len(d), 1))
    for n, c in zip(sizes, marks, strict=True):
        step = n - drawn
        k0 = np.arange(probs.shape[1])[None, :]
        moved = np.zeros((len(d), probs.shape[1] + step))
        left = np.maximum(d - k0, 0)
        for i in range(step + 1):  # i more differing answers among the step's draws
            moved[:, i : i + probs.shape[1]] += probs * _hypergeom_pmf(
                np.full(left.shape, i), population - drawn, left, step
            )
        top = np.minimum(c, d[:, 0] - budget - 1)
        below = np.arange(moved.shape[1])[None, :] <= top[:, None]
        crossed += (moved * below).sum(axis=1)
        moved[below] = 0.0
        small = moved <= _NEGLIGIBLE
        crossed += (moved * small).sum(axis=1)  # dropped: counted as errors
        moved[small] = 0.0
        kept = np.nonzero(moved.any(axis=0))[0]
        probs = moved[:, : int(kept[-1]) + 1] if len(kept) else moved[:, :1]
        drawn = n
    return crossed
