"""Batch mode: when to stop profiling and commit the rest of the batch, and to what.

With the finite-population bound a candidate ``c`` that has been sent ``R_c`` items is charged
``min(R_c, G_c)`` differing answers, ``G_c`` being the bound on differing answers among all of its
unprobed items, and the charges must sum to at most ``epsilon * N``. That accounting has two
regimes per candidate: *free* items, charged one each whatever the candidate's quality (no probe
needed), and a *saturated* candidate, charged ``G_c`` once however many items it takes. So the
cheapest way to finish a batch from a given state is: at most one saturated candidate takes the
bulk, the budget left over buys free items on the cheapest other one, and the reference (whose
answers are probes) takes whatever is left. :func:`cheapest_commitment` computes that; the policy
keeps probing while probing longer and committing then is predicted to cost less.

Everything here is economics: the budget check before each routed item is what keeps the
promise, whatever these functions decide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["CandidateState", "Commitment", "cheapest_commitment"]


@dataclass(frozen=True, slots=True)
class CandidateState:
    """What the batch budget knows about one candidate."""

    name: str
    #: Cost of one of its answers.
    cost: float
    #: Items already sent to it (``R``).
    routed: float
    #: Most differing answers among its unprobed items (``G``, the bound's edge).
    cap: float

    @property
    def charge(self) -> float:
        return min(self.routed, self.cap)


@dataclass(frozen=True, slots=True)
class Commitment:
    """How the remaining items of a batch would be served, and what that costs."""

    cost: float
    #: Items per route (the reference included); they add up to the remaining items.
    items: Mapping[str, float]
    #: The candidate charged its whole cap (taking the bulk of the items), if any.
    saturated: str | None


def cheapest_commitment(
    remaining: float,
    budget: float,
    reference: str,
    reference_cost: float,
    states: Sequence[CandidateState],
) -> Commitment:
    """The cheapest way to serve ``remaining`` items within ``budget`` differing answers.

    Tries every candidate as the saturated one (and none), gives the budget left over to free
    items on the cheapest remaining candidate, the rest to the saturated one or the reference.
    """
    used = sum(s.charge for s in states)
    best = _serve(remaining, budget - used, reference, reference_cost, None, states)
    for sat in states:
        # Saturated: all its items together are charged its cap, whatever their number.
        spare = budget - (used - sat.charge) - sat.cap
        if spare < -1e-9 or sat.cost >= reference_cost:
            continue
        option = _serve(remaining, spare, sat.name, sat.cost, sat.name, states)
        if option.cost < best.cost:
            best = option
    return best


def _serve(
    remaining: float,
    spare: float,
    bulk: str,
    bulk_cost: float,
    saturated: str | None,
    states: Sequence[CandidateState],
) -> Commitment:
    """``bulk`` takes the items the spare budget cannot buy on a cheaper candidate."""
    free = [s for s in states if s.name != saturated and s.cost < bulk_cost]
    items: dict[str, float] = {}
    left = remaining
    if free and spare >= 1.0:
        cheapest = min(free, key=lambda s: s.cost)
        # Each free item raises the charge by one until the candidate reaches its cap.
        saturates = cheapest.routed + spare >= cheapest.cap
        take = left if saturates else min(left, math.floor(spare + 1e-9))
        if saturates and saturated is None:
            saturated = cheapest.name
        if take > 0:
            items[cheapest.name] = take
            left -= take
    if left > 0:
        items[bulk] = items.get(bulk, 0.0) + left
    cost_of = {s.name: s.cost for s in states}
    cost_of.setdefault(bulk, bulk_cost)
    return Commitment(
        cost=sum(cost_of[r] * k for r, k in items.items()), items=items, saturated=saturated
    )
