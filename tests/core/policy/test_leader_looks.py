"""The leader's planned looks: where they are put, which probes join them, what a pass caps."""

from __future__ import annotations

import pytest

from smart_core.policy.leader_looks import (
    GRID_LIMIT,
    MIN_LOOK,
    look_cap,
    look_sizes,
    pending_looks,
    plan_leader_looks,
)
from smart_core.policy.state import Evidence, TaskState
from smart_core.stats.fixed_look import look_size

C = "cand"


def state(*, whole=(0, 0, 0), look=(0, 0, 0), dropped=0.0) -> TaskState:
    """A stage state: (compared, agreed, open) of the candidate's probes and of its looks."""
    return TaskState(
        evidence={C: Evidence(*whole, dropped=dropped)},
        look_evidence={C: Evidence(*look)},
    )


@pytest.mark.parametrize("centre,rest", [(300, 1400), (25, 1400), (900, 1400), (40, 60)])
def test_look_sizes_stay_between_the_smallest_look_and_half_the_items(centre, rest):
    sizes = look_sizes(centre, rest)
    assert sizes == sorted(set(sizes))
    assert min(sizes) >= min(MIN_LOOK, rest // 2)
    assert max(sizes) <= max(rest // 2, 1)
    # The grid brackets the centre wherever the bounds leave room.
    if MIN_LOOK < centre < rest // 2:
        assert min(sizes) < centre < max(sizes)


def test_a_grid_below_the_limit_and_one_look_past_it():
    small = plan_leader_looks(55, 60, 1400, 148, 0.04)
    large = plan_leader_looks(55, 60, GRID_LIMIT + 1000, 148 * 3, 0.04)
    assert small is not None and len(small.sizes) > 10
    assert large is not None and len(large.sizes) == 1
    # One look is sized at the shaded estimate: below the estimate 55.5 / 61.
    p = 55.5 / 61
    assert large.sizes[0] > look_size(p, GRID_LIMIT + 1000, 148 * 3, 0.04)


def test_no_look_for_a_leader_that_cannot_pass():
    # Agreeing 80 % where the budget needs about 90 %: no size up to half the items passes.
    assert plan_leader_looks(48, 60, 1400, 140, 0.04) is None


def test_a_pass_caps_the_budget_less_what_later_probes_found():
    plan = plan_leader_looks(58, 60, 1400, 148, 0.04)
    assert plan is not None
    n = plan.sizes[-1]
    mark = plan.passes[-1]
    assert mark >= 1
    # The look's sample: n probes, `mark` differing (a pass). Since then 30 probes more, 4 of
    # them differing: the cap is the budget less those 4.
    passed = state(whole=(n + 30, n + 30 - mark - 4, 0), look=(n, n - mark, 0))
    assert look_cap(plan, passed, C) == pytest.approx(plan.budget - 4)
    # One differing answer over the mark certifies nothing.
    failed = state(whole=(n, n - mark - 1, 0), look=(n, n - mark - 1, 0))
    assert look_cap(plan, failed, C) is None
    # A look probe still open: the sample is not all in, nothing is read.
    pending = state(whole=(n, n - mark, 1), look=(n, n - mark, 1))
    assert look_cap(plan, pending, C) is None
    # No plan: no cap.
    assert look_cap(None, passed, C) is None


def test_probes_join_the_looks_up_to_each_size_then_wait_for_the_sample():
    plan = plan_leader_looks(55, 60, 1400, 148, 0.04)
    assert plan is not None
    first = plan.sizes[0]
    looks = {C: plan}
    assert pending_looks(looks, state(look=(first - 1, first - 1, 0)), {}) == (C,)
    # The first size is reached with a probe still open: no more tagging until it settles.
    assert pending_looks(looks, state(look=(first - 1, first - 1, 1)), {}) == ()
    # Settled and read (no pass): tagging goes on toward the next size.
    assert pending_looks(looks, state(look=(first, first - 10, 0)), {}) == (C,)
    # A pass, or a dropped candidate, ends the looks.
    assert pending_looks(looks, state(look=(first, first, 0)), {C: 100.0}) == ()
    assert pending_looks(looks, state(look=(first, first, 0), dropped=1.0), {}) == ()
    # Past the last size nothing more joins.
    last = plan.sizes[-1]
    assert pending_looks(looks, state(look=(last, last - 50, 0)), {}) == ()
