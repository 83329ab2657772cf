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
    # The candidates are considered in a fixed order (every feasible route alone, then every
    # pair of an infeasible route with a dearer feasible one) and replace the best so far when
    # cheaper beyond a tolerance, or as cheap and safer. The tolerance makes the outcome depend
    # on that order, so it is kept; the loop is inlined because it runs O(R^2) times per solve.
    best = None  # (cost, -agreement, i, j, w_i)
    best_cost = best_neg = 0.0
    floor = target - _TOL
    feasible = [(j, bounds[j], costs[j]) for j in range(n) if bounds[j] >= floor]
    for j, lj, cj in feasible:
        if best is None:
            best, best_cost, best_neg = (cj, -lj, j, j, 1.0), cj, -lj
            continue
        tol = _TOL * max(1.0, abs(best_cost))
        if cj < best_cost - tol or (abs(cj - best_cost) <= tol and -lj < best_neg):
            best, best_cost, best_neg = (cj, -lj, j, j, 1.0), cj, -lj
    neg_target = -target
    for i in range(n):
        li, ci = bounds[i], costs[i]
        if li >= floor:
            continue
        for j, lj, cj in feasible:
            if cj <= ci:
                continue  # j alone is feasible and cheaper than any mix with a pricier i
            w = (lj - target) / (lj - li)  # weight on the infeasible, cheaper route i
            cost = w * ci + (1.0 - w) * cj
            if best is None:
                best, best_cost, best_neg = (cost, neg_target, i, j, w), cost, neg_target
                continue
            tol = _TOL * max(1.0, abs(best_cost))
            if cost < best_cost - tol or (abs(cost - best_cost) <= tol and neg_target < best_neg):
                best, best_cost, best_neg = (cost, neg_target, i, j, w), cost, neg_target
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
