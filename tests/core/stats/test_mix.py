"""The cheapest admissible mix of routes (smart_core.stats.mix).

``solve_mix`` solves a two-constraint linear programme by scanning single routes and pairs;
these tests hold it to an independent LP solver and pin down the edge cases the router hits.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from smart_core.stats.mix import mix_cost, solve_mix


def _linprog_mix(costs: list[float], bounds: list[float], target: float):
    """min c.w  s.t.  L.w >= target, sum w = 1, w >= 0, with HiGHS (tight tolerances)."""
    n = len(costs)
    return linprog(
        c=costs,
        A_ub=[[-b for b in bounds]],
        b_ub=[-target],
        A_eq=[[1.0] * n],
        b_eq=[1.0],
        bounds=[(0.0, None)] * n,
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )


def _random_instance(rng: np.random.Generator, k: int) -> tuple[list[float], list[float], float]:
    """1-7 routes with costs and bounds in [0, 1]; every other instance adds a reference
    (bound 1, highest cost) at a random position; a quarter use a coarse 0.1 grid so equal
    costs, equal bounds and targets equal to a bound occur."""
    n = int(rng.integers(1, 8))
    coarse = k % 4 == 1 or k % 4 == 2
    if coarse:
        costs = (rng.integers(0, 11, n) / 10).tolist()
        bounds = (rng.integers(0, 11, n) / 10).tolist()
        target = float(rng.integers(0, 11) / 10)
    else:
        costs = rng.random(n).tolist()
        bounds = rng.random(n).tolist()
        target = float(rng.random())
    if k % 2 == 0:
        pos = int(rng.integers(0, n + 1))
        costs.insert(pos, max(costs) + float(rng.random()) + (0.0 if coarse else 1e-3))
        bounds.insert(pos, 1.0)
    return costs, bounds, target


@pytest.mark.slow
def test_solve_mix_matches_linprog_on_random_instances() -> None:
    """Guards exactness of the pair scan: on 2,000 random instances it agrees with scipy's LP
    solver on feasibility and optimal cost (1e-9), and its weights are a valid mix -- sum to
    1, nonnegative, at most two nonzero -- that meets the agreement target."""
    rng = np.random.default_rng(12345)
    n_feasible = n_infeasible = 0
    for k in range(2_000):
        costs, bounds, target = _random_instance(rng, k)
        weights = solve_mix(costs, bounds, target)
        ref = _linprog_mix(costs, bounds, target)
        case = (k, costs, bounds, target, weights)
        if ref.status == 2:  # infeasible
            assert weights is None, case
            assert max(bounds) < target, case
            n_infeasible += 1
            continue
        assert ref.status == 0, (case, ref.message)
        assert weights is not None, case
        n_feasible += 1
        assert len(weights) == len(costs), case
        assert all(w >= 0.0 for w in weights), case
        assert sum(weights) == pytest.approx(1.0, abs=1e-12), case
        assert sum(1 for w in weights if w > 0.0) <= 2, case
        agreement = sum(w * b for w, b in zip(weights, bounds, strict=True))
        assert agreement >= target - 1e-9, case
        assert mix_cost(costs, weights) == pytest.approx(ref.fun, abs=1e-9), case
    # Both branches were exercised substantially.
    assert n_feasible > 800 and n_infeasible > 150


def test_single_route_and_single_feasible_route() -> None:
    """Guards degenerate route sets: one route is used alone when it meets the target, and when
    the only route meeting the target is also the cheapest, it takes all the weight."""
    assert solve_mix([2.0], [0.9], 0.8) == [1.0]
    assert solve_mix([2.0], [0.9], 0.95) is None
    # Route 1 is the only one meeting 0.9 and nothing is cheaper, so no mix helps.
    assert solve_mix([0.5, 0.1, 0.7], [0.2, 0.95, 0.3], 0.9) == [0.0, 1.0, 0.0]
    # A cheaper infeasible route is mixed in to exactly meet the target.
    w = solve_mix([0.1, 1.0], [0.5, 1.0], 0.9)
    assert w == pytest.approx([0.2, 0.8])
    assert mix_cost([0.1, 1.0], w) == pytest.approx(0.82)


def test_target_exactly_equal_to_a_bound() -> None:
    """Guards the boundary of feasibility: a route whose bound equals the target exactly is
    admissible on its own (no spurious mix, no None)."""
    assert solve_mix([0.2, 1.0], [0.9, 1.0], 0.9) == [1.0, 0.0]
    # Equal to the bound of the middle route: it alone beats every mix.
    assert solve_mix([0.1, 0.5, 1.0], [0.5, 0.9, 1.0], 0.9) == [0.0, 1.0, 0.0]
    # Equal to the top bound: only the reference qualifies, and it is returned alone.
    assert solve_mix([0.1, 0.5, 1.0], [0.5, 0.9, 1.0], 1.0) == [0.0, 0.0, 1.0]
    # Target 0: every route qualifies, so the cheapest is used alone.
    assert solve_mix([0.3, 0.1, 1.0], [0.0, 0.0, 1.0], 0.0) == [0.0, 1.0, 0.0]


def test_infeasible_returns_none() -> None:
    """Guards the 'no admissible mix' signal: when no route reaches the target (or there are no
    routes), solve_mix returns None rather than a mix that breaks the guarantee."""
    assert solve_mix([0.1, 0.2, 0.3], [0.5, 0.8, 0.89], 0.9) is None
    assert solve_mix([0.1], [0.0], 1e-9) is None
    assert solve_mix([], [], 0.5) is None


def test_mismatched_lengths_raise() -> None:
    """Guards against silently pairing costs with the wrong bounds."""
    with pytest.raises(ValueError, match="length"):
        solve_mix([0.1, 0.2], [0.9], 0.5)
    with pytest.raises(ValueError):
        solve_mix([], [0.9], 0.5)
    with pytest.raises(ValueError):
        mix_cost([0.1, 0.2], [1.0])


def test_cost_tie_is_deterministic() -> None:
    """Guards determinism under ties: identical routes resolve to the lower index, and a cost
    tie with a route listed first that has the larger agreement keeps that route."""
    assert solve_mix([1.0, 1.0], [0.9, 0.9], 0.8) == [1.0, 0.0]
    assert solve_mix([1.0, 1.0], [0.95, 0.9], 0.8) == [1.0, 0.0]


def test_cost_tie_prefers_larger_agreement() -> None:
    """Guards the documented tie-break ('ties in cost go to the mix with the larger
    guaranteed agreement'): two routes at the same price, the later one with the higher bound,
    should resolve to the later one."""
    assert solve_mix([1.0, 1.0], [0.9, 0.95], 0.8) == [0.0, 1.0]


def test_mix_cost() -> None:
    """Guards the expected per-request cost of a mix: the weight-averaged route cost."""
    assert mix_cost([1.0, 2.0, 3.0], [0.5, 0.5, 0.0]) == pytest.approx(1.5)
    assert mix_cost([0.25], [1.0]) == 0.25
    assert mix_cost([], []) == 0
    costs, bounds = [0.1, 0.4, 2.0], [0.6, 0.85, 1.0]
    w = solve_mix(costs, bounds, 0.9)
    assert mix_cost(costs, w) == pytest.approx(_linprog_mix(costs, bounds, 0.9).fun, abs=1e-12)
