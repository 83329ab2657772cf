"""Exact failure probabilities of a bound re-checked at a schedule of looks
(smart_core.stats.repeated_looks), and the corrected per-look level of the SMART paper's rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from smart_core.stats.confidence import ClopperPearsonBound
from smart_core.stats.repeated_looks import (
    CHECKED_AGREEMENTS,
    clopper_pearson_critical_counts,
    clopper_pearson_failure,
    corrected_clopper_pearson_alpha,
    critical_counts,
    exact_miss_probability,
)

# The paper's code asks for a two-sided 95 % Clopper-Pearson interval, so its lower bound is
# the one-sided bound at 2.5 %, re-checked every 10 items.
PAPER_ALPHA = 0.025
DELTA = 0.05


def test_closed_form_critical_counts_match_the_real_bound():
    """The binomial-tail shortcut gives exactly the critical counts certified with the real
    Clopper-Pearson ``lower`` (every 10 looks up to 500, two levels, two agreements)."""
    looks = list(range(10, 501, 10))
    for p in (0.8, 0.95):
        fast = clopper_pearson_critical_counts(p, looks, [0.05, 0.002])
        for row, alpha in zip(fast, (0.05, 0.002), strict=True):
            certified = critical_counts(ClopperPearsonBound().lower, p, looks, alpha)
            np.testing.assert_array_equal(row, certified)


def test_exact_miss_probability_agrees_with_a_direct_sum_for_one_look():
    """With a single look the probability is a binomial tail, which scipy gives directly; and
    with looks at every observation the one-step recursion matches it at the last look only
    when earlier critical counts are out of reach."""
    p, t = 0.9, 300
    crit = clopper_pearson_critical_counts(p, [t], [0.05])[0]
    exact = exact_miss_probability(p, crit, [t])
    assert exact == pytest.approx(stats.binom.sf(crit[0] - 1, t, p), rel=1e-10)
    looks = list(range(1, t + 1))
    unreachable = np.array([k + 2 for k in looks])
    unreachable[-1] = crit[0]
    assert exact_miss_probability(p, unreachable, looks) == pytest.approx(exact, rel=1e-10)


def test_corrected_level_keeps_failure_within_delta_and_the_paper_level_does_not():
    """On sms_spam's batch (5,574 items, looks every 10): the paper's per-look 2.5 % lets the
    bound exceed the truth on ~16-22 % of streams at the checked agreements; the corrected level
    brings every one of them to <= delta = 5 %, and the next grid level up (~10 % larger) does
    not, so the correction is no more conservative than it must be."""
    horizon = 5574
    alpha = corrected_clopper_pearson_alpha(DELTA, horizon)
    assert alpha < PAPER_ALPHA / 5
    corrected = [clopper_pearson_failure(p, horizon, alpha) for p in CHECKED_AGREEMENTS]
    paper = [clopper_pearson_failure(p, horizon, PAPER_ALPHA) for p in CHECKED_AGREEMENTS]
    looser = [clopper_pearson_failure(p, horizon, alpha * 1.12) for p in CHECKED_AGREEMENTS]
    print(f"corrected per-look level {alpha:.5f}: failure {max(corrected):.4f}; paper {max(paper)}")
    assert max(corrected) <= DELTA
    assert min(paper) > 0.15
    assert max(looser) > DELTA
    # A longer horizon means more looks, so the level must be lower still.
    assert corrected_clopper_pearson_alpha(DELTA, 20_000) < alpha


def test_invalid_arguments_raise():
    """Levels outside (0, 0.5), budgets outside (0, 0.5) and a degenerate p are errors."""
    with pytest.raises(ValueError, match="per-look"):
        clopper_pearson_critical_counts(0.9, [10], [0.5])
    with pytest.raises(ValueError, match="delta"):
        corrected_clopper_pearson_alpha(0.0, 100)
    with pytest.raises(ValueError, match="p must"):
        exact_miss_probability(1.0, np.array([1]), [1])
