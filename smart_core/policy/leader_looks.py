"""Planned looks for one candidate of a batch plan: sizes from data seen before them, pass marks
fixed in advance, and what a pass lets the plan route.

A screened batch (:mod:`smart_core.policy.screened_batch`) picks a leader from its screening
stage and certifies it with looks (:mod:`smart_core.stats.sequential_looks`) on probes decided
after that stage. The looks' part lives here, apart from screening's: where the looks are put,
which probes join their sample, and the cap on differing answers a passed look gives. The
state these functions read is the certification stage's own: its ``evidence`` counts the
probes decided after screening, and ``looked_by`` the probes tagged for the looks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..stats.fixed_look import look_size
from ..stats.sequential_looks import LookPlan, plan_looks
from .state import TaskState

__all__ = [
    "GRID_LIMIT",
    "LOOK_GROWTH",
    "LOOK_STEPS",
    "MIN_LOOK",
    "PLAN_SHADE",
    "look_cap",
    "look_sizes",
    "pending_looks",
    "plan_leader_looks",
]

#: Items left after the first stage up to which the leader gets a grid of looks; past it one
#: look (the grid's calibration is exact over every count of differing answers, and its work
#: grows with the square of the batch: about a second at 1,500 items, ten at 3,000).
GRID_LIMIT = 2500
#: The looks are centred on the size one look would need at the first stage's estimate less
#: this many standard errors.
PLAN_SHADE = 0.5
#: The leader's looks: sizes growing by this factor, from this many steps below the centre to
#: this many above (about 0.3 to 2 times it), none under :data:`MIN_LOOK` probes nor over half
#: the items left. Looks are nearly free (:mod:`smart_core.stats.sequential_looks`), so many.
LOOK_GROWTH = 1.05
LOOK_STEPS = (24, 15)
MIN_LOOK = 20


def look_sizes(centre: int, rest: int) -> list[int]:
    """The leader's look sizes around ``centre`` (see :data:`LOOK_GROWTH`)."""
    below, above = LOOK_STEPS
    sizes = {round(centre * LOOK_GROWTH**i) for i in range(-below, above + 1)}
    top = max(rest // 2, 1)
    return sorted({min(max(n, MIN_LOOK), top) for n in sizes})


def plan_leader_looks(
    agreed: float, compared: float, rest: int, budget: float, alpha: float
) -> LookPlan | None:
    """The leader's looks on ``rest`` items from its first-stage counters, at level ``alpha``:
    a grid up to :data:`GRID_LIMIT` items, one look past it; ``None`` where the first stage
    predicts that no look passes (its share is then better spent on the bound valid at every
    size). Everything here must be a function of the first stage alone."""
    p = (agreed + 0.5) / (compared + 1.0)
    # Centred a little below the estimate, so that a look near the centre passes more often
    # than not; the looks on either side catch an estimate that was off.
    p_plan = p - PLAN_SHADE * math.sqrt(p * (1.0 - p) / (compared + 1.0))
    grid = rest <= GRID_LIMIT
    centre = look_size(p_plan, rest, budget, alpha)
    if grid and centre is None:
        centre = look_size(p, rest, budget, alpha)
    if centre is None:
        return None
    return plan_looks(look_sizes(centre, rest) if grid else [centre], rest, budget, alpha)


def pending_looks(
    looks: Mapping[str, LookPlan], state: TaskState, capped: Mapping[str, float | None]
) -> tuple[str, ...]:
    """The candidates whose next probe joins their looks' sample, until a look passed
    (``capped[c]`` set) or the sample reached the last look's size.

    Where the run supplies the settled prefix of the look probes (``state.look_prefix``), a
    look is read on the prefix as soon as its first probes are in, so tagging goes on while
    others are out. Without it a look is read only when no look probe is open (the sample must
    be every probe tagged so far): tagging pauses at each size until the sample is all in and
    read, and the probes decided in between count only for the bound valid at every size."""
    out = []
    for c, plan in looks.items():
        look = state.looked_by(c)
        if state.evidence_of(c).dropped or capped.get(c) is not None:
            continue
        if state.look_prefix is not None:
            if look.sampled < plan.last:
                out.append(c)
            continue
        after = [n for n in plan.sizes if n > look.compared]
        if after and look.sampled < after[0]:
            out.append(c)
    return tuple(out)


def look_cap(plan: LookPlan | None, state: TaskState, c: str) -> float | None:
    """The most differing answers among ``c``'s items unprobed now, once one of its looks
    passed (``None`` before, or while the sample a look is read on is not all in).

    The sample is :meth:`TaskState.look_sample`: the first look probes decided, up to the
    first still open where the run supplies that prefix, else every look probe once none is
    open. Either is a uniform sample of the items (which probes are tagged is decided before
    their answers), and a look read on more probes than its size is read late, which is safe
    (:mod:`smart_core.stats.sequential_looks`).

    A pass certifies the look plan's budget for the items outside the sample. Probed items
    outside it are among those, so their differing answers come off the budget, one for one
    (not the budget scaled down to the items left, which later probes agreeing more than their
    share would make too small). A later probe still open is taken as agreeing, so it takes
    nothing off."""
    sample = state.look_sample(c)
    if plan is None or (state.look_prefix is None and sample.open > 0):
        return None
    n = int(sample.sampled)  # a probe of the prefix that never settles reads as differing
    if not n:
        return None
    if not plan.certifies(int(n - sample.agreed), n):
        return None
    now = state.evidence_of(c)
    found_since = max((now.compared - now.agreed) - (sample.compared - sample.agreed), 0.0)
    return float(max(plan.budget - found_since, 0.0))
