"""Batch mode on a per-item bound (``method="clopper-pearson"``, the paper's rule, replication
only): the online mix of :mod:`smart_core.policy.online` under a budget of differing answers.

This is the end of docs/guarantee.md, "Why it holds", step 5: with a per-item bound every item
routed to a candidate is charged ``1 - L`` at its decision, and routing stops short of
``epsilon * N`` by a margin for the chance fluctuation of the answers around their probabilities
(part of delta, and the exact Poisson tail: :func:`realized_budget`). The default batch mode,
on the finite-population bound, is :class:`~smart_core.policy.batch.BatchPlanPolicy`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ..stats.confidence import (
    ConfidenceSequence,
    FinitePopulationSequence,
    make_confidence_sequence,
)
from ..stats.mix import solve_mix
from .base import State, split_delta
from .online import OnlineMixPolicy
from .state import TaskState
from .threshold_family import config_families

__all__ = ["BatchBudgetPolicy", "realization_share", "realized_budget"]

#: Probes a candidate needs before batch items may be sent to it.
_MIN_PROBES_BEFORE_ROUTING = 20


class BatchBudgetPolicy(OnlineMixPolicy):
    """The online mix with a batch budget: the target of each item is the budget left over the
    items left, and an item goes to a candidate only while the batch budget covers it."""

    mode = "batch"

    def __init__(
        self,
        *,
        task: str,
        reference: str,
        candidates: Sequence[str],
        epsilon: float,
        delta: float,
        prior_costs: Mapping[str, float],
        batch_size: int,
        method: str = "clopper-pearson",
        audit_rate: float = 0.0,
        delta_weights: Mapping[str, float] | None = None,
        route_models: Mapping[str, Sequence[str]] | None = None,
        bound: ConfidenceSequence | None = None,
        families: Sequence[Sequence[str]] = (),
    ) -> None:
        bound = bound or make_confidence_sequence(method, epsilon, batch_size)
        if isinstance(bound, FinitePopulationSequence):
            raise ValueError("the finite-population bound plans its batch: use BatchPlanPolicy")
        super().__init__(
            task=task,
            reference=reference,
            candidates=candidates,
            epsilon=epsilon,
            delta=delta,
            prior_costs=prior_costs,
            audit_rate=audit_rate,
            delta_weights=delta_weights,
            route_models=route_models,
            bound=bound,
            families=families,
        )
        self.batch_size = batch_size
        # The promise is the *realized* share of the batch: a per-item bound needs part of
        # delta for the chance fluctuation of the answers around their probabilities.
        self.realization_delta = delta * realization_share(epsilon, batch_size)
        self.alphas = split_delta(
            delta - self.realization_delta, self.candidates, delta_weights, self.families.groups
        )
        self._budget = realized_budget(epsilon * batch_size, self.realization_delta)

    @classmethod
    def from_config(cls, config, *, task: str | None = None) -> BatchBudgetPolicy:
        """Build from a :class:`~smart_core.SmartConfig` (prices give the costs before usage)."""
        rate = getattr(config, "audit_rate", None)
        return cls(
            **cls.config_arguments(config, task=task),
            batch_size=config.batch_size,
            audit_rate=0.0 if rate is None else float(rate),
            families=config_families(config),
        )

    # -- the budget --------------------------------------------------------------------------

    def _target(self, state: TaskState, lower: Mapping[str, float]) -> tuple[float, float]:
        """(budget left, effective epsilon): the budget left spread over the items left."""
        budget_left = self._budget_left(state, lower)
        remaining = max(self.batch_size - state.requests, 1.0)
        return budget_left, min(1.0, max(0.0, budget_left / remaining))

    def _horizon(self, requests: float) -> float | None:
        return max(self.batch_size - requests, 0.0)

    def _explored_bound(self, bound: float, predicted: float) -> float:
        # A route with no bound yet is barred from the batch: exploring does not make it usable.
        return max(bound, predicted) if bound > 0 else bound

    def _explored_epsilon(
        self,
        state: TaskState,
        lower: Mapping[str, float],
        predicted: Mapping[str, float | None],
        horizon: float,
        extra: float,
    ) -> float:
        # The budget the tighter bounds would leave, counted exactly as decisions count it.
        tighter = {c: max(predicted[c] or 0.0, lower[c]) for c in self.candidates}
        eps = self._budget_left(state, tighter) / max(horizon - extra, 1.0)
        return min(1.0, max(0.0, eps))

    def _allowed(
        self,
        state: TaskState,
        routes: Sequence[str],
        costs: Sequence[float],
        bounds: Sequence[float],
        upper: Mapping[str, float],
        target: float,
    ) -> list[bool]:
        """Which routes the mix may use without wasting the batch budget.

        Budget spent on a candidate that turns out poor is lost for good, so a candidate needs a
        few probes first and must belong to the cheapest mix under a middle estimate of where
        its bound will end up. Barred routes are left out of the LP (the reference never is).
        """
        mid = [1.0] + [0.5 * (lo + upper[r]) for lo, r in zip(bounds[1:], routes[1:], strict=True)]
        planned = solve_mix(costs, mid, target) or [1.0] + [0.0] * (len(routes) - 1)
        out = [True]
        for i, r in enumerate(routes[1:], start=1):
            evidence = state.evidence_of(r)
            ready = evidence.dropped or (evidence.compared >= _MIN_PROBES_BEFORE_ROUTING)
            out.append(bool(ready and planned[i] > 0))
        return out

    def _fits_budget(
        self, state: State, lower: Mapping[str, float], route: str | None, **_: str | None
    ) -> bool:
        """May one more item go to ``route`` without risking the batch's promise? (``None``: do
        the items already counted fit?) Its charge ``1 - L`` must fit the budget left."""
        state = TaskState.of(state)
        need = 1.0 - lower[route] if route else 0.0
        return self._budget_left(state, lower) >= need - 1e-9

    def _budget_left(self, state: TaskState, lower: Mapping[str, float]) -> float:
        """Expected differing answers the batch may still afford, in requests.

        Each item sent to a candidate was charged ``1 - L`` at its decision; the items sent to a
        route are also covered by ``(1 - L_now)`` each, since every bound holds at all times. The
        smaller of the two is used, so a bound that tightens frees budget and one that slips
        back never overdraws it. The total is capped below ``epsilon * N`` by the margin that
        keeps the *realized* share within epsilon (see :func:`realized_budget`).
        """
        used = 0.0
        for c in self.candidates:
            routed = state.routed.get(c, 0.0)
            if routed:
                now = routed * (1.0 - lower[c])
                used += min(state.charged.get(c, now), now)
        return self._budget - used


def realization_share(epsilon: float, batch_size: int | None) -> float:
    """Share of delta kept for the realized batch share, fixed by the configuration alone.

    The realization margin is about ``z(delta') sqrt(B)`` for a budget ``B = epsilon * N``:
    large relative to small budgets, negligible for large ones, while every bit of delta taken
    from the bounds costs probes. So small budgets get up to half of delta, large ones 5 %.
    """
    if not batch_size:
        return 0.0
    return min(0.5, max(0.05, 3.0 / math.sqrt(max(epsilon * batch_size, 1.0))))


def realized_budget(allowed: float, delta: float) -> float:
    """The largest expected count of differing answers whose realized count stays <= ``allowed``.

    The routing decisions never see a routed answer's agreement (only probes are compared), so
    given the decisions the routed items differ independently, item ``i`` with probability
    ``q_i``; on the bounds' good event ``sum q_i <= B``. The count of differing answers is then a
    Poisson-binomial variable with mean at most ``B``, and for ``k >= B + 1`` its chance of
    reaching ``k`` is at most a Poisson(``B``) variable's (Hoeffding 1956, Theorem 4, then
    Anderson & Samuels 1967). This returns the largest ``B <= k - 1`` with
    ``P(Poisson(B) >= k) <= delta``, ``k = floor(allowed) + 1`` the first count that exceeds
    ``allowed``. ``delta = 0`` means no margin.
    """
    if delta <= 0:
        return allowed
    k = math.floor(allowed) + 1
    if _poisson_sf(k, 0.0) > delta:  # unreachable: P(Poisson(0) >= k) = 0 for k >= 1
        return 0.0
    lo, hi = 0.0, float(k - 1)
    if _poisson_sf(k, hi) <= delta:
        return hi
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if _poisson_sf(k, mid) <= delta:
            lo = mid
        else:
            hi = mid
    return lo


def _poisson_sf(k: int, mu: float) -> float:
    """P(Poisson(mu) >= k) for ``mu < k``, summed from the k-th term up (terms fall off)."""
    if k <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    log_mu = math.log(mu)
    term = math.exp(-mu + k * log_mu - math.lgamma(k + 1))
    total = 0.0
    j = k
    while term > 1e-18 * max(total, 1e-300) or j == k:
        total += term
        j += 1
        term *= mu / j
        if j > k + 100_000:
            break
    return min(total, 1.0)
