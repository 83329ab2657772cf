"""The certificate attached to every answer: which route answered and why that was allowed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Certificate"]


@dataclass(frozen=True, slots=True)
class Certificate:
    """What the policy in force promised when this request was routed.

    The promise differs by ``mode``, and so does what ``bound`` means:

    * **request** (online): ``bound`` is the guaranteed agreement of the mix in force
      (``sum(pi_r * L_r)``): with probability at least ``1 - delta`` the chance that a request
      served by this policy gets an answer agreeing with the reference's is at least ``bound``,
      and ``bound >= 1 - effective_epsilon`` (``effective_epsilon == epsilon`` online).
    * **batch** (``batch_size`` items known in advance): the promise is on a count, not a
      per-request chance: with probability at least ``1 - delta``, at most ``differing_at_most``
      of the batch's answers given so far differ from the reference's, and routing keeps that
      count within ``budget = epsilon * batch_size`` to the end of the batch. ``bound`` and
      ``effective_epsilon`` are then the budget's bookkeeping, *not* an agreement guarantee:
      ``mix`` is the plan for the items not yet decided, ``bound`` is one minus the share of
      those items the plan may add to the count, and ``effective_epsilon`` is the budget left
      per undecided item (up to 1 once few are left). Read ``differing_at_most`` and ``budget``.

    ``bounds`` are each route's own lower agreement bound (the reference's is 1): online, on the
    chance of agreeing; in batch mode, on the share of that route's answers among the batch's
    items it has not been compared on (items routed to it are among those).
    ``route`` may be a cascade (``cascade:gpt-4o-mini[label=A]>ref``): its bound is the
    cascade's own agreement, measured on probes; ``step`` and ``score`` say which of its steps
    answered this request and how its scorer judged the answer.
    ``differing_at_most`` is ``None`` online, and in batch mode with
    ``method="clopper-pearson"``, whose per-item bound states no count tighter than ``budget``.
    """

    task: str
    route: str
    probe: bool
    mix: dict[str, float]
    bound: float
    probes: int
    epsilon: float
    delta: float
    method: str
    mode: str
    effective_epsilon: float
    bounds: dict[str, float] = field(default_factory=dict)
    #: Batch mode: the number of items in the batch (``None`` online).
    batch_size: int | None = None
    #: Batch mode: how many of the batch's answers may differ, ``epsilon * batch_size``.
    budget: float | None = None
    #: Batch mode: at most this many of the answers given so far (this one included) differ from
    #: the reference's, with probability at least ``1 - delta``: the sum over candidates of
    #: ``min(R_c, G_c)`` (items routed to ``c``; bound on differing answers among its unprobed
    #: items). Always ``<= budget``.
    differing_at_most: float | None = None
    #: A cascade route: the step that answered (``model[label=A]``, or ``ref`` when it escalated)
    #: and the score its scorer gave (``None`` for the reference). ``None`` for other routes.
    step: str | None = None
    score: float | None = None

    @classmethod
    def of_reference(
        cls,
        task: str,
        reference: str,
        *,
        probe: bool,
        epsilon: float,
        delta: float,
        method: str,
        mode: str,
        effective_epsilon: float,
        **batch: Any,
    ) -> Certificate:
        """The reference's own answer, outside any mix (an unrecorded request, a training item):
        it agrees with itself, which is all it promises. ``batch`` sets the batch fields."""
        return cls(
            task=task,
            route=reference,
            probe=probe,
            mix={reference: 1.0},
            bound=1.0,
            probes=0,
            epsilon=epsilon,
            delta=delta,
            method=method,
            mode=mode,
            effective_epsilon=effective_epsilon,
            bounds={reference: 1.0},
            **batch,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for response metadata, output files and reports)."""
        return asdict(self)
