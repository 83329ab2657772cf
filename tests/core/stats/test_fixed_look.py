"""The one-look bound for sampling without replacement: exact coverage at the threshold, by
computation and by simulation, and the planned look size."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import hypergeom

from smart_core.stats.fixed_look import look_size, max_differing


def _miss_probability(population: int, differing: int, n: int, alpha: float) -> float:
    """Exact chance that the bound falls below the true count ``differing``."""
    return sum(
        hypergeom.pmf(k, population, differing, n)
        for k in range(0, min(n, differing) + 1)
        if max_differing(k, n, population, alpha) < differing
    )


@pytest.mark.parametrize(("population", "n", "alpha"), [(1000, 300, 0.05), (5000, 400, 0.01)])
def test_exact_coverage_holds_at_every_true_count(population, n, alpha):
    """For every true count of differing answers the chance of a bound below it is at most
    alpha, and near the edge it is more than alpha / 3 (the bound is tight, not loose)."""
    worst = 0.0
    for differing in range(0, population // 4, 7):
        worst = max(worst, _miss_probability(population, differing, n, alpha))
    assert worst <= alpha + 1e-12
    assert worst >= alpha / 3


def test_simulated_coverage_at_the_threshold_tells_5_from_10_percent():
    """4,000 draws with the true count where the bound is tightest: the miss rate is within
    three standard errors of at most 5 %, which a 10 % rule would fail."""
    population, n, alpha = 1484, 280, 0.05
    # The true count whose exact miss probability is the largest (the threshold).
    edge = max(range(80, 200), key=lambda d: _miss_probability(population, d, n, alpha))
    rng = np.random.default_rng(7)
    draws = rng.hypergeometric(edge, population - edge, n, size=4000)
    missed = np.mean([max_differing(int(k), n, population, alpha) < edge for k in draws])
    assert missed <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / 4000)
    assert missed > 0.02  # at the threshold, not far inside it


def test_bound_grows_with_the_differing_answers_seen_and_never_below_them():
    bounds = [max_differing(k, 200, 1000, 0.05) for k in range(0, 60)]
    assert all(b2 >= b1 for b1, b2 in itertools.pairwise(bounds))
    assert all(b >= k for k, b in enumerate(bounds))


@pytest.mark.parametrize("bad", [(5, 4, 100, 0.05), (1, 10, 100, 0.0), (1, 10, 5, 0.05)])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        max_differing(*bad)


def test_look_size_is_the_smallest_size_that_certifies_the_rest():
    population, budget, alpha = 1439, 148.4, 0.035
    n = look_size(0.913, population, budget, alpha)
    assert n is not None and 200 < n < 400

    def passes(m: int) -> bool:
        k = math.ceil((1 - 0.913) * m)
        return max_differing(k, m, population, alpha) - k <= budget

    assert passes(n) and not passes(n - 1)
    # A better candidate needs fewer probes; one that cannot meet the budget gets no look.
    assert look_size(0.95, population, budget, alpha) < n
    assert look_size(0.80, population, budget, alpha) is None


def test_a_search_started_from_any_guess_finds_the_same_bound():
    # look_size warm-starts each size's search from the previous size's answer; wherever the
    # guess falls (below, at, above the answer, or at the ends) the answer must not move.
    from smart_core.stats.fixed_look import _last_plausible

    rng = np.random.default_rng(7)
    for _ in range(300):
        population = int(rng.integers(20, 5_000))
        n = int(rng.integers(1, population + 1))
        k = int(rng.integers(0, n + 1))
        alpha = float(rng.choice([0.001, 0.0175, 0.05, 0.3]))
        cold = max_differing(k, n, population, alpha)
        for guess in {
            k,
            k + 1,
            cold - 1,
            cold,
            cold + 1,
            population - (n - k) - 1,
            int(rng.integers(k, population - (n - k) + 1)),
        }:
            assert _last_plausible(k, n, population, alpha, guess) == cold


def test_look_size_refuses_a_level_outside_zero_one():
    with pytest.raises(ValueError, match="alpha"):
        look_size(0.95, 1_000, 50.0, 0.0)
