"""Certifying a nested family of routes without a union bound over its members.

A grid of thresholds for one scorer (``logprob>=0.99``, ``>=0.95``, ``>=0.9``, ...) is a family
of routes ordered from the most conservative (escalates most, agrees most) to the cheapest.
Giving each member its own share of delta (the union bound) makes every bound looser the finer
the grid. Fixed-sequence testing, as in Learn-then-Test (Angelopoulos, Bates, Candès, Jordan &
Lei, 2021), spends nothing per member:

* fix a target agreement ``q`` and the members' order before seeing any data;
* test "member m agrees at least ``q``" for each member in order, *each at the family's full
  alpha*, and stop at the first member that is not certified;
* the certified members are a prefix of the order.

Why it is valid: if any certified member agrees less than ``q``, the first such member in the
order -- call it m* -- was tested, so its own test certified it wrongly. Which member is m* is
fixed by the true agreements, not by the data, and one test at alpha is wrong with probability
at most alpha. So with probability at least ``1 - alpha`` *every* certified member agrees at
least ``q``, however many members the family has and whatever their agreements are (no
monotonicity needed; a badly ordered family only certifies less).

With an anytime-valid confidence sequence as the test ("certified" = its lower bound reaches
``q``), the test may be repeated at every look: a wrong certificate at any time means m*'s
sequence left its true agreement at some time, which happens with probability at most alpha
for all times at once (Ville's inequality). The certified prefix may therefore grow and shrink
as probes come in.

A statement for several levels ``q`` at once is a different matter: inverting the test for
every ``q`` at full alpha is not valid (with decreasing agreements, each member is the first
failure for some ``q``, and the union over members is back). :func:`family_lower_bounds` splits
alpha evenly over a small grid of levels fixed in advance: a union bound over the ``G`` levels,
never over the ``K`` members.

Pure functions of counts; the policy decides which counters and which share of delta to use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from .confidence import ConfidenceSequence, make_confidence_sequence

__all__ = [
    "certified_prefix",
    "certifying_successes",
    "family_lower_bounds",
    "fixed_sequence_test",
    "grid_lower_bounds",
    "q_grid_for",
]


def certified_prefix(lowers: Sequence[float], q: float) -> int:
    """How many leading members are certified at ``q``: the length of the longest prefix whose
    lower bounds all reach ``q`` (the test stops at the first member that does not)."""
    k = 0
    for lower in lowers:
        if lower < q:
            break
        k += 1
    return k


def fixed_sequence_test(
    counts: Sequence[tuple[int, int]],
    q: float,
    alpha: float,
    bound: ConfidenceSequence | None = None,
) -> int:
    """The number of leading members certified to agree at least ``q``, each tested at the full
    ``alpha`` in the given order (most conservative first); ``counts`` are (agreements,
    probes) per member. With probability at least ``1 - alpha`` every certified member agrees
    at least ``q`` -- at every look, with an anytime ``bound`` (the default)."""
    _check(q, alpha)
    bound = bound or make_confidence_sequence("anytime", 1.0 - q)
    k = 0
    for successes, trials in counts:  # lazily: members past the first failure are not bounded
        if trials <= 0 or bound.lower(int(successes), int(trials), alpha) < q:
            break
        k += 1
    return k


def family_lower_bounds(
    counts_by_member: Mapping[str, tuple[int, int]],
    alpha: float,
    q_grid: Sequence[float],
    bound: ConfidenceSequence | None = None,
) -> dict[str, float]:
    """A lower bound on each member's agreement, valid for all members at once with probability
    at least ``1 - alpha``: the highest level of ``q_grid`` at which the fixed-sequence test
    certifies the member (each level tested at ``alpha / len(q_grid)``), else 0.0.

    ``counts_by_member`` maps member -> (agreements, probes) *in the family's order*, most
    conservative first; that order and ``q_grid`` must be fixed before any data is seen (they
    may depend on the config, never on the counts). The bounds are nonincreasing along the
    order (a certified prefix at each level).
    """
    levels = sorted({float(q) for q in q_grid}, reverse=True)
    if not levels:
        raise ValueError("q_grid must hold at least one target agreement level, e.g. [0.95]")
    for q in levels:
        _check(q, alpha)
    names = list(counts_by_member)
    counts = [counts_by_member[m] for m in names]
    share = alpha / len(levels)
    out = dict.fromkeys(names, 0.0)
    certified = 0  # members certified at a higher level are certified at every lower one
    for q in levels:  # highest first: each member keeps the highest level it reaches
        level_bound = bound or make_confidence_sequence("anytime", 1.0 - q)
        k = fixed_sequence_test(counts, q, share, level_bound)
        for name in names[certified:k]:
            out[name] = q
        certified = max(certified, k)
    return out


def grid_lower_bounds(lowers: Sequence[float], q_grid: Sequence[float]) -> list[float]:
    """The family's bounds from its members' own lower bounds, each computed at the family's
    alpha split over ``q_grid`` (``alpha / len(q_grid)``), in the family's order: member m gets
    the highest level of the grid that every member up to and including m reaches, else 0.0.

    The same as :func:`family_lower_bounds` when each member's bound is one confidence
    sequence read at its counters, but for bounds the caller already has (read at several
    sample sizes, or at a drift epoch's share of alpha): the test "member m agrees at least q"
    is "its lower bound reaches q" whatever produced the bound, as long as it is valid at the
    level given."""
    levels = sorted({float(q) for q in q_grid}, reverse=True)
    if not levels:
        raise ValueError("q_grid must hold at least one target agreement level, e.g. [0.95]")
    out: list[float] = []
    floor = math.inf  # the least bound so far along the order: the prefix's weakest member
    for lower in lowers:
        floor = min(floor, float(lower))
        out.append(next((q for q in levels if floor >= q), 0.0))
    return out


def certifying_successes(
    trials: int, q: float, alpha: float, bound: ConfidenceSequence | None = None
) -> int | None:
    """The fewest agreements out of ``trials`` probes whose lower bound reaches ``q`` (the
    bound is nondecreasing in the agreements); ``None`` if even ``trials`` agreements do not."""
    _check(q, alpha)
    bound = bound or make_confidence_sequence("anytime", 1.0 - q)
    if trials <= 0 or bound.lower(trials, trials, alpha) < q:
        return None
    lo, hi = 0, trials  # lower(hi) >= q; find the smallest such
    if bound.lower(lo, trials, alpha) >= q:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bound.lower(mid, trials, alpha) >= q:
            hi = mid
        else:
            lo = mid
    return hi


def q_grid_for(epsilon: float, levels: int = 4) -> list[float]:
    """Target levels worth certifying for a task allowing ``epsilon`` of differing answers:
    ``1 - epsilon`` (a member may answer everything), then ``1 - 2 epsilon``, ``1 - 4
    epsilon``, ... (it may answer half, a quarter, ... of the requests, mixed with the
    reference). Depends on the config alone, as the test requires."""
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon!r}")
    if levels < 1:
        raise ValueError(f"levels must be at least 1, got {levels!r}")
    grid = [1.0 - epsilon * 2**i for i in range(levels)]
    return [q for q in grid if q > 0.0]


def _check(q: float, alpha: float) -> None:
    if not 0.0 < q < 1.0:
        raise ValueError(f"the target agreement q must be in (0, 1), got {q!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
