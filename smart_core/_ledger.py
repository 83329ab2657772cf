"""The ledger: what a task has cost, what it would have cost on the reference alone, and why.

Everything is derived from the task's counters, so any process reading the store (a report, a
dashboard, another worker) sees the same ledger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from . import _keys as K
from ._policy import MixPolicy

__all__ = ["Ledger", "RouteStats"]


@dataclass(frozen=True, slots=True)
class RouteStats:
    """What is known about one candidate route."""

    name: str
    requests: int
    probes: int
    agreements: int
    lower: float
    upper: float
    mean_cost: float
    failures: int
    fallbacks: int
    dropped: bool


@dataclass(frozen=True, slots=True)
class Ledger:
    """Per-task spend and savings, with the policy currently in force.

    ``reference_estimate`` is exact for requests the reference answered and, for the others, the
    reference's mean observed cost; ``reference_interval`` is a 95 % normal interval for that
    estimate (it is an estimate of money, not part of the quality guarantee).
    """

    task: str
    mode: str
    epsilon: float
    delta: float
    method: str
    requests: int
    probes: int
    audits: int
    spent: float
    probe_candidate_spend: float
    reference_estimate: float
    reference_interval: tuple[float, float]
    savings: float
    savings_interval: tuple[float, float]
    mix: dict[str, float]
    bound: float
    effective_epsilon: float
    routes: dict[str, RouteStats] = field(default_factory=dict)

    @classmethod
    def from_counters(cls, counters: Mapping[str, float], policy: MixPolicy) -> Ledger:
        view = policy.view(counters)
        ref = policy.reference
        ref_n = counters.get(K.REF_N, 0.0)
        ref_cost = counters.get(K.REF_COST, 0.0)
        ref_sq = counters.get(K.REF_COST_SQ, 0.0)
        requests = counters.get(K.REQUESTS, 0.0)
        others = max(requests - ref_n, 0.0)
        if ref_n > 0:
            mean = ref_cost / ref_n
            var = max(ref_sq / ref_n - mean * mean, 0.0)
            half = 1.96 * math.sqrt(var / ref_n) * others
        else:
            mean = policy.expected_cost(counters, ref)
            half = mean * others  # no observation yet: say so with a wide interval
        estimate = ref_cost + mean * others
        interval = (max(estimate - half, ref_cost), estimate + half)
        spent = counters.get(K.SPENT, 0.0)

        def ratio(x: float) -> float:
            return x / spent if spent > 0 else 1.0

        routes = {}
        for c in policy.candidates:
            routes[c] = RouteStats(
                name=c,
                requests=int(counters.get(K.routed(c), 0.0)),
                probes=int(counters.get(K.probes_of(c), 0.0)),
                agreements=int(counters.get(K.agreements(c), 0.0)),
                lower=view.lower[c],
                upper=view.upper[c],
                mean_cost=policy.expected_cost(counters, c),
                failures=int(counters.get(K.failures(c), 0.0)),
                fallbacks=int(counters.get(K.fallbacks(c), 0.0)),
                dropped=bool(counters.get(K.dropped(c))),
            )
        return cls(
            task=policy.task,
            mode=policy.mode,
            epsilon=policy.epsilon,
            delta=policy.delta,
            method=policy.method,
            requests=int(requests),
            probes=int(counters.get(K.PROBES, 0.0)),
            audits=int(counters.get(K.AUDITS, 0.0)),
            spent=spent,
            probe_candidate_spend=counters.get(K.SPENT_PROBE_CANDIDATES, 0.0),
            reference_estimate=estimate,
            reference_interval=interval,
            savings=ratio(estimate),
            savings_interval=(ratio(interval[0]), ratio(interval[1])),
            mix=view.mix,
            bound=view.bound,
            effective_epsilon=view.effective_epsilon,
            routes=routes,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few human-readable lines."""
        lo, hi = self.savings_interval
        lines = [
            f"task {self.task} ({self.mode} mode, epsilon={self.epsilon:g}, delta={self.delta:g},"
            f" bound: {self.method})",
            f"  requests {self.requests}, probes {self.probes} (audits {self.audits})",
            f"  spent ${self.spent:.4f}; reference only ~${self.reference_estimate:.4f}"
            f"  -> savings {self.savings:.2f}x [{lo:.2f}, {hi:.2f}]",
            f"  probe overhead on candidates ${self.probe_candidate_spend:.4f}",
            "  mix: "
            + ", ".join(f"{r} {w:.1%}" for r, w in self.mix.items())
            + f"  (guaranteed agreement {self.bound:.4f})",
        ]
        for r in self.routes.values():
            # A dropped candidate is no longer explored; it may still carry traffic (and be
            # audited) when the profiling already put it in the mix.
            status = ""
            if r.dropped:
                in_mix = self.mix.get(r.name, 0.0) > 0.0
                status = " (profiling done; audits only)" if in_mix else " (dropped)"
            lines.append(
                f"  {r.name}: {r.requests} routed, {r.agreements}/{r.probes} agreed,"
                f" bound [{r.lower:.4f}, {r.upper:.4f}]{status}"
            )
        return "\n".join(lines)
