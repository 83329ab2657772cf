"""The cheapest mix of routes whose guaranteed agreement meets the target.

    minimize  sum_r pi_r c_r   subject to  sum_r pi_r L_r >= 1 - eps,  sum_r pi_r = 1,  pi >= 0

With two constraints a basic optimal solution has at most two non-zero weights, so scanning
every route and every pair straddling the target solves it exactly, in O(R^2) with no solver.
Each ``L_r`` is a route's anytime lower bound on its agreement with the reference (the
reference's is 1), so on the event that every bound holds the mix's true agreement is at least
1 - eps: docs/guarantee.md, "Why it holds", step 4.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["mix_cost", "solve_mix"]

_TOL = 1e-12


def solve_mix(costs: Sequence[float], bounds: Sequence[float], target: float) -> list[float] | None:
    """Weights of the cheapest mix with ``sum(w * bounds) >= target``; None when infeasible.

    Ties in cost go to the mix with the larger guaranteed agreement, then to lower indices, so
    the answer is deterministic.
    """
    n = len(costs)
    if n != len(bounds):
        raise ValueError(f"costs and bounds differ in length ({n} != {len(bounds)})")
    best: tuple[float, float, int, int, float] | None = None  # (cost, -agreement, i, j, w_i)

    def consider(cost: float, agreement: float, i: int, j: int, w: float) -> None:
        nonlocal best
        if best is None:
            best = (cost, -agreement, i, j, w)
            return
        tol = _TOL * max(1.0, abs(best[0]))
        cheaper = cost < best[0] - tol
        tied_but_safer = abs(cost - best[0]) <= tol and -agreement < best[1]
        if cheaper or tied_but_safer:
            best = (cost, -agreement, i, j, w)

    for i in range(n):
        if bounds[i] >= target - _TOL:
            consider(costs[i], bounds[i], i, i, 1.0)
    for i in range(n):
        li, ci = bounds[i], costs[i]
        if li >= target - _TOL:
            continue
        for j in range(n):
            lj, cj = bounds[j], costs[j]
            if lj < target - _TOL or cj <= ci:
                continue  # j alone is feasible and cheaper than any mix with a pricier i
            w = (lj - target) / (lj - li)  # weight on the infeasible, cheaper route i
            consider(w * ci + (1.0 - w) * cj, target, i, j, w)
    if best is None:
        return None
    _, _, i, j, w = best
    weights = [0.0] * n
    weights[i] += w
    weights[j] += 1.0 - w
    return weights


def mix_cost(costs: Sequence[float], weights: Sequence[float]) -> float:
    """Expected cost per request of a mix."""
    return sum(c * w for c, w in zip(costs, weights, strict=True))
