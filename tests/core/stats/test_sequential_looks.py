"""Many looks at sizes fixed in advance, calibrated jointly (smart_core.stats.sequential_looks).

Properties of the pass marks, the exact error against a direct enumeration, and the validity
claim by simulation at the threshold: 20,000 batches drawn at the count of differing answers
where the plan errs most, probes read at every look: the share of batches some look certifies
wrongly is within alpha, while the same looks with each pass mark at alpha err well above it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from smart_core.stats.fixed_look import max_differing
from smart_core.stats.sequential_looks import LookPlan, look_error, plan_looks


def _grid(first: int, last: int, ratio: float = 1.05) -> list[int]:
    sizes, n = [], float(first)
    while n <= last:
        sizes.append(int(n))
        n = max(n * ratio, n + 1)
    return sizes


def test_each_pass_mark_is_the_single_looks_at_the_plans_level() -> None:
    plan = plan_looks([200, 240, 290, 350, 420], 1400, 148.4, 0.045)
    assert plan is not None and plan.budget == 148
    for n, c in zip(plan.sizes, plan.passes, strict=True):
        # a pass at c bounds the unsampled differing answers by the budget; c + 1 does not
        assert max_differing(c, n, 1400, plan.level) - c <= 148
        assert max_differing(c + 1, n, 1400, plan.level) - (c + 1) > 148
    # five looks cost almost nothing: each is read at nearly the whole alpha
    assert plan.level > 0.9 * 0.045


def test_more_looks_lower_the_level_but_never_below_the_union_bound() -> None:
    sizes = _grid(30, 700)
    plan = plan_looks(sizes, 1400, 148, 0.05)
    assert plan is not None
    assert 0.05 / len(sizes) <= plan.level < 0.05
    assert plan.level > 10 * 0.05 / len(sizes)
    assert list(plan.passes) == sorted(plan.passes)


def test_certifies_reads_the_largest_look_not_above_the_sample() -> None:
    plan = LookPlan((100, 200, 300), (5, 12, 20), 1000, 80, 0.05, 0.04)
    assert not plan.certifies(0, 99)  # before the first look
    assert plan.certifies(5, 100) and not plan.certifies(6, 150)
    assert plan.certifies(12, 299) and plan.certifies(20, 5000)
    assert not plan.certifies(21, 300)


def test_plan_looks_rejects_bad_input_and_gives_none_when_nothing_passes() -> None:
    with pytest.raises(ValueError, match="alpha"):
        plan_looks([10], 100, 5, 1.5)
    with pytest.raises(ValueError, match="look sizes"):
        plan_looks([0, 100], 100, 5, 0.05)
    assert plan_looks([10, 20], 10_000, 0, 0.001) is None  # 20 probes never vouch for 9,980


@pytest.mark.parametrize("seed", range(30))
def test_a_pass_mark_by_bisection_is_the_tables(seed: int) -> None:
    """Large batches find a size's pass mark by bisection on the count; it is the mark the
    table of every count's tail gives (the tail grows with the count)."""
    from smart_core.stats.sequential_looks import _pass_mark, _pass_marks

    rng = np.random.default_rng(seed)
    population = int(rng.integers(200, 3000))
    n = int(rng.integers(1, population // 2))
    budget = int(rng.integers(0, population // 5))
    level = float(rng.choice([0.001, 0.01, 0.05, 0.2]))
    assert (
        _pass_mark(n, population, budget, level) == _pass_marks((n,), population, budget, level)[0]
    )


def _enumerated_error(plan: LookPlan, differing: int) -> float:
    """The error by brute force over every path of a tiny population."""
    from itertools import combinations

    m, total, wrong = plan.population, 0, 0
    for marked in combinations(range(m), differing):
        hit = np.zeros(m, dtype=int)
        hit[list(marked)] = 1
        total += 1
        k = np.cumsum(hit)
        wrong += any(
            c >= 0 and k[n - 1] <= c and differing - k[n - 1] > plan.budget
            for n, c in zip(plan.sizes, plan.passes, strict=True)
        )
    return wrong / total


@pytest.mark.parametrize("differing", [3, 4, 5, 6, 8])
def test_the_exact_error_matches_enumeration_on_a_tiny_batch(differing: int) -> None:
    plan = LookPlan((4, 7, 10), (0, 1, 2), 16, 2, 0.3, 0.3)
    assert look_error(plan, differing) == pytest.approx(_enumerated_error(plan, differing))


def _simulated_error(plan: LookPlan, differing: int, batches: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    sizes = np.array(plan.sizes)
    passes = np.array(plan.passes)
    wrong = 0
    for _ in range(batches // 1000):
        items = np.zeros((1000, plan.population), dtype=np.int16)
        items[:, :differing] = 1
        items = rng.permuted(items, axis=1)
        k = np.cumsum(items[:, : sizes[-1]], axis=1)[:, sizes - 1]
        bad = (k <= passes) & (differing - k > plan.budget) & (passes >= 0)
        wrong += int(bad.any(axis=1).sum())
    return wrong / batches


def test_the_looks_hold_at_the_threshold_where_looks_at_alpha_each_do_not() -> None:
    alpha, population, budget = 0.05, 1400, 148
    plan = plan_looks(_grid(60, 700, 1.08), population, budget, alpha)
    assert plan is not None
    worst = max(range(budget + 1, budget + 120), key=lambda d: look_error(plan, d))
    exact = look_error(plan, worst)
    assert exact <= alpha
    batches = 20_000
    rate = _simulated_error(plan, worst, batches, seed=1)
    se = math.sqrt(alpha * (1 - alpha) / batches)
    assert rate <= alpha + 3 * se
    assert abs(rate - exact) <= 4 * math.sqrt(exact * (1 - exact) / batches) + 1e-9
    # the same looks, each at alpha on its own: the chance that some look errs is well above
    at_alpha = LookPlan(
        plan.sizes,
        tuple(_mark(n, population, budget, alpha) for n in plan.sizes),
        population,
        budget,
        alpha,
        alpha,
    )
    naive_worst = max(look_error(at_alpha, d) for d in range(budget + 1, budget + 120))
    assert naive_worst > alpha + 4 * se
    naive_d = max(range(budget + 1, budget + 120), key=lambda d: look_error(at_alpha, d))
    naive_rate = _simulated_error(at_alpha, naive_d, batches, seed=2)
    print(
        f"\n{len(plan.sizes)} looks at level {plan.level:.4f}: wrong in {rate:.4f} of batches "
        f"(exact {exact:.4f}, alpha {alpha}); each at alpha: {naive_rate:.4f} "
        f"(exact {naive_worst:.4f})"
    )
    assert naive_rate > alpha + 3 * se


def _mark(n: int, population: int, budget: int, level: float) -> int:
    c = -1
    while c + 1 <= n and max_differing(c + 1, n, population, level) - (c + 1) <= budget:
        c += 1
    return c
