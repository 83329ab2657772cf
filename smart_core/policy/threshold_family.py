"""Threshold families in the online mix: one share of delta per family, fixed-sequence bounds.

A grid of thresholds for one scorer is a family of cascades (``threshold_families`` in
``smart_core.task.cascades`` finds them in the config, most conservative member first). Under
the union bound each member would take its own share of delta, so a finer grid would loosen
every route's bound, the other routes' included. Here a family takes one share ``alpha`` and
its members' bounds come from fixed-sequence testing (docs/guarantee.md, "Many thresholds
without burning delta"):

* each member's own bound is computed at ``alpha / G``, one part per level of a grid of ``G``
  target agreements fixed by epsilon alone (:func:`~smart_core.stats.fixed_sequence.q_grid_for`);
* a member's bound in the mix is the highest level that it and every member before it reach
  (:func:`~smart_core.stats.fixed_sequence.grid_lower_bounds`).

A grid level is coarser than a member's own bound, so groups no larger than the grid stay plain
routes, each with its own share. The anytime bound widens only as the square root of log(1 /
alpha), so the union bound costs a grid's members little; measured on simulated grids the
family saved no more than the union bound (docs/cascades.md), which is why a config asks for it
(``threshold_families="fixed-sequence"``) rather than getting it by default.
Under drift detection a family restarts as one (``OnlineMixPolicy._watch``), so its members'
epochs stay equal and each epoch's fixed sequence is one test at the epoch's share of alpha.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..stats.fixed_sequence import grid_lower_bounds, q_grid_for
from ..task.cascades import threshold_families

__all__ = ["FAMILY_LEVELS", "ThresholdFamilies", "config_families"]

#: Levels of the grid a family's members are certified at: 1 - epsilon, 1 - 2 epsilon, 1 - 4
#: epsilon, 1 - 8 epsilon (a member may answer all, half, a quarter, an eighth of the traffic).
FAMILY_LEVELS = 4


def config_families(config) -> list[tuple[str, ...]]:
    """The threshold families a config asks to certify by fixed-sequence testing: none unless
    ``threshold_families="fixed-sequence"``."""
    if getattr(config, "threshold_families", "union") != "fixed-sequence":
        return []
    return threshold_families(config.cascade_list())


class ThresholdFamilies:
    """The families of one policy's candidates: which route is in which, and their bounds."""

    def __init__(
        self, families: Sequence[Sequence[str]], candidates: Sequence[str], epsilon: float
    ) -> None:
        known = set(candidates)
        self.q_grid = q_grid_for(epsilon, FAMILY_LEVELS)
        #: The families kept: more members than grid levels, all of them candidates.
        self.groups: tuple[tuple[str, ...], ...] = tuple(
            tuple(f) for f in families if len(f) > len(self.q_grid) and all(m in known for m in f)
        )
        self._family_of = {m: f for f in self.groups for m in f}

    def __bool__(self) -> bool:
        return bool(self.groups)

    def level_share(self, route: str) -> float:
        """The part of its share of delta a route's own bound is computed at: one grid level's
        for a family member, all of it otherwise."""
        return 1.0 / len(self.q_grid) if route in self._family_of else 1.0

    def members_with(self, route: str) -> tuple[str, ...]:
        """The routes that restart with ``route``: its family, or itself alone."""
        return self._family_of.get(route, (route,))

    def certify(self, lower: Mapping[str, float]) -> dict[str, float]:
        """``lower`` (members' own bounds, at :meth:`level_share` of their alpha) with each
        family member's bound replaced by its fixed-sequence grid level."""
        out = dict(lower)
        for family in self.groups:
            levels = grid_lower_bounds([lower[m] for m in family], self.q_grid)
            out.update(zip(family, levels, strict=True))
        return out
