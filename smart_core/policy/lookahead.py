"""The batch look-ahead's arithmetic, for every (probe count, scenario) of one look at once.

:class:`~smart_core.policy.batch.BatchPlanPolicy` values probing on by the cost of committing
after ``extra`` more probes, in each of a few agreement-rate scenarios: a table of
:func:`~smart_core.policy.commitment.cheapest_commitment` costs. Cell by cell in Python that
table took milliseconds per continuation with a dozen candidates. Here the cells are columns of
arrays, and everything that does not change within one look (costs, items routed, the cheapest
other candidate of each one, the widths of the bounds) is worked out once per look.

The numbers are the scalar code's, bit for bit: only correctly rounded IEEE operations
(``+ - * /``, ``sqrt``, ``floor``, ``min``, ``max``) run element-wise, in the scalar code's
order; logarithms and the sums over candidates (whose order of additions differs between
Python versions) are left to Python. Tests compare the two exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .commitment import CandidateState

__all__ = ["LookaheadGrid"]


class LookaheadGrid:
    """One look at a batch, as arrays: the candidates' constants, and the cheapest commitment's
    cost for many sets of caps (one column per cell of a look-ahead's table)."""

    def __init__(
        self,
        *,
        states: Sequence[CandidateState],
        compared: Sequence[float],
        widths: Sequence[tuple[float, float]],
        extras: Sequence[float],
        remaining: float,
        budget: float,
        reference_cost: float,
        batch_size: int,
    ) -> None:
        k = len(states)
        self.extras = list(extras)
        self.budget = budget
        self.reference_cost = reference_cost
        self.batch_size = batch_size
        self.cost = np.array([s.cost for s in states], dtype=float)
        self.routed = np.array([s.routed for s in states], dtype=float)
        self.caps = np.array([s.cap for s in states], dtype=float)
        self._compared = list(compared)
        self._widths = list(widths)
        self._extras = np.array(self.extras, dtype=float)
        #: Items left after each look-ahead's probes (what the commitment then serves).
        self.left = remaining - self._extras
        # The cheapest candidate is the first of the lowest cost (min() keeps the first); that
        # of all but ``i`` is the first of this order that is not ``i``.
        order = sorted(range(k), key=lambda i: self.cost[i])
        self._free_all = order[0] if k and self.cost[order[0]] < reference_cost else -1
        other = [next((j for j in order if j != i), -1) for i in range(k)]
        self._free = np.array([max(j, 0) for j in other], dtype=np.intp)
        self._has_free = np.array(
            [j >= 0 and self.cost[j] < self.cost[i] for i, j in enumerate(other)], dtype=bool
        )
        self._may_saturate = self.cost < reference_cost
        self._z: dict[int, np.ndarray] = {}
        self._capped: dict[tuple[int, float], np.ndarray] = {}

    # -- predicted caps ----------------------------------------------------------------------

    def future_caps(self, i: int, rate: float) -> np.ndarray:
        """Candidate ``i``'s cap after each look-ahead's probes agreeing at ``rate``: today's
        cap or the predicted one, the smaller (``BatchPlanPolicy._predicted_cap``)."""
        key = (i, rate)
        hit = self._capped.get(key)
        if hit is None:
            hit = self._capped[key] = np.minimum(self.caps[i], self._predicted(i, rate))
        return hit

    def _predicted(self, i: int, rate: float) -> np.ndarray:
        probes = self._compared[i] + self._extras
        z = self._z.get(i)
        if z is None:
            n0, z2 = self._widths[i]
            # The logarithm in Python (libm), as the scalar code takes it.
            z = self._z[i] = np.sqrt(
                np.array([z2 + math.log(max(n, n0) / n0) for n in probes.tolist()], dtype=float)
            )
        rest = self.batch_size - probes
        p = np.minimum(rate, 1.0 - 0.5 / (probes + 1.0))
        lower = np.minimum(1.0, np.maximum(0.0, rate - z * np.sqrt(p * (1.0 - p) / probes)))
        return np.where(rest <= 0, 0.0, (1.0 - lower) * rest)

    # -- the cheapest commitment -------------------------------------------------------------

    def commitment_costs(self, caps: np.ndarray, left: np.ndarray) -> np.ndarray:
        """``cheapest_commitment(left[g], budget, ..., states with caps[:, g]).cost`` for every
        column ``g`` of ``caps`` (candidates by rows)."""
        charges = np.minimum(self.routed[:, None], caps)
        used = _column_sums(charges)
        ref_cost = self.reference_cost
        # Nobody saturated: the reference takes the bulk, the budget buys free items on the
        # cheapest candidate.
        spare = self.budget - used
        f = self._free_all
        if f >= 0:
            best = _serve(spare, left, ref_cost, self.cost[f], self.routed[f], caps[f])
        else:
            best = np.where(left > 0, ref_cost * left, 0.0)
        # Each candidate saturated in turn: it takes the bulk, charged its whole cap.
        spare = self.budget - (used - charges) - caps
        options = _serve(
            np.where(self._has_free[:, None], spare, -math.inf),
            left,
            self.cost[:, None],
            self.cost[self._free][:, None],
            self.routed[self._free][:, None],
            caps[self._free],
        )
        allowed = ~(spare < -1e-9) & self._may_saturate[:, None]
        if allowed.any():
            best = np.minimum(best, np.where(allowed, options, math.inf).min(axis=0))
        return best


def _serve(spare, left, bulk_cost, free_cost, free_routed, free_cap) -> np.ndarray:
    """The cost of ``commitment._serve`` with the cheapest candidate cheaper than the bulk
    (``spare`` is ``-inf`` where there is none)."""
    buys = spare >= 1.0
    saturates = free_routed + spare >= free_cap
    with np.errstate(invalid="ignore"):
        take = np.where(saturates, left, np.minimum(left, np.floor(spare + 1e-9)))
    take = np.where(buys, take, 0.0)
    taken = take > 0
    rest = np.where(taken, left - take, left)
    return np.where(taken, free_cost * take, 0.0) + np.where(rest > 0, bulk_cost * rest, 0.0)


def _column_sums(rows: np.ndarray) -> np.ndarray:
    """``sum(column)`` of every column, added in Python's own way (which changed in 3.12)."""
    return np.array([sum(col) for col in rows.T.tolist()], dtype=float)
