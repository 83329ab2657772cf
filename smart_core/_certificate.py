"""The certificate attached to every answer: which route answered and why that was allowed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Certificate"]


@dataclass(frozen=True, slots=True)
class Certificate:
    """What the policy in force promised when this request was routed.

    ``bound`` is the guaranteed agreement of the whole mix (``sum(pi_r * L_r)``); the guarantee
    is that, with probability at least ``1 - delta``, the true agreement of the policy is at least
    ``bound`` and ``bound >= 1 - effective_epsilon``. In batch mode ``effective_epsilon`` may
    exceed ``epsilon`` because reference answers already returned left slack in the batch budget.
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for response metadata, output files and reports)."""
        return asdict(self)
