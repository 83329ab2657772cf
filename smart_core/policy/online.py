"""The online policy: the cheapest mix whose guaranteed agreement meets the target, per request.

This is docs/guarantee.md, "Why it holds", steps 1-4 (the online mix), and "Under shift
(online)" for the drift epochs. Per request the policy (1) bounds every live candidate's
agreement with the reference, (2) solves the two-constraint LP for the cheapest mix whose
guaranteed agreement meets the target, and (3) draws a route from that mix. Whatever the mix
sends to the reference becomes a *probe*: the live candidates are called too and their agreement
is recorded. Probing therefore costs only the candidates' calls, it is an unbiased sample of
traffic (the draw never looks at the request), and it fades out by itself as the bounds tighten.
Candidates whose best case cannot pay back further probes are dropped; probes beyond what the
mix needs are bought when they are predicted to pay for themselves (``expected_requests``).

Every request is answered by a mix whose agreement is at least ``1 - epsilon`` with probability
``1 - delta``, simultaneously at all times. A small share of the requests routed to candidates
is audited (sent to the reference and compared), and with drift detection each candidate's
change detector restarts it in a new epoch when its agreement drops below its bound.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence

from ..stats.confidence import ConfidenceSequence, make_confidence_sequence
from ..stats.drift import DRIFT_THRESHOLD, CusumState, drift_alternative, epoch_share
from ..stats.mix import mix_cost
from .base import (
    MIN_PROBES_BEFORE_DROP,
    PolicyBase,
    PolicyView,
    State,
    adds_value,
    solve,
    solve_over,
    split_delta,
)
from .state import TaskState
from .threshold_family import ThresholdFamilies, config_families

__all__ = ["OnlineMixPolicy"]

#: Exploration looks this many times the current probes ahead, and explores only when the
#: predicted saving beats the probes' premium by this factor (predictions are optimistic).
_EXPLORE_GROWTH = 2.0
_EXPLORE_MARGIN = 3.0
#: Probes before a candidate may be dropped for adding too little to the predicted mix, and by
#: how much its predicted contribution must beat the cost of its probes to stay.
_MIN_PROBES_BEFORE_VALUE_DROP = 30
#: Probe counts at which a candidate's best case (all agreements) is checked for pay-back.
_PAYBACK_PROBES = (10, 30, 100, 300, 1000, 3000, 10000, 30000)
#: Probe budgets (multiples of a candidate's current probes) the drop rule looks ahead to.
_LOOKAHEAD_GROWTH = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


class OnlineMixPolicy(PolicyBase):
    """Decides probe vs route for an online task from its state alone (stateless between
    calls, but for the change detectors' running statistics, which each process rebuilds)."""

    mode = "request"

    def __init__(
        self,
        *,
        task: str,
        reference: str,
        candidates: Sequence[str],
        epsilon: float,
        delta: float,
        prior_costs: Mapping[str, float],
        method: str = "anytime",
        expected_requests: int | None = None,
        audit_rate: float = 0.0,
        delta_weights: Mapping[str, float] | None = None,
        route_models: Mapping[str, Sequence[str]] | None = None,
        bound: ConfidenceSequence | None = None,
        drift: bool = False,
        families: Sequence[Sequence[str]] = (),
        reserved: Sequence[str] = (),
    ) -> None:
        super().__init__(
            task=task,
            reference=reference,
            candidates=candidates,
            epsilon=epsilon,
            delta=delta,
            prior_costs=prior_costs,
            bound=bound or make_confidence_sequence(method, epsilon),
            delta_weights=delta_weights,
            route_models=route_models,
        )
        #: Threshold families certified by fixed-sequence testing (:mod:`.threshold_family`).
        self.families = ThresholdFamilies(families, self.candidates, epsilon)
        #: Routes not open yet whose share of delta is set aside (cascades whose learned scorer
        #: is still training, smart_core.engine.scorer_training): the split is the one the
        #: policy built after their freeze makes, so no open route's share ever changes.
        self.reserved = tuple(reserved)
        pending = ThresholdFamilies(families, self.reserved, epsilon).groups
        self.alphas = split_delta(
            delta, [*self.candidates, *self.reserved], delta_weights, self.families.groups + pending
        )
        for name in self.reserved:
            del self.alphas[name]
        self.expected_requests = expected_requests
        self.audit_rate = audit_rate
        self.drift = bool(drift)
        # Drift detectors of this process, per (candidate, epoch): see smart_core.stats.drift.
        self._detectors: dict[tuple[str, int], CusumState] = {}
        self._detectors_lock = threading.Lock()

    @classmethod
    def from_config(cls, config, *, task: str | None = None) -> OnlineMixPolicy:
        """Build from a :class:`~smart_core.SmartConfig` (prices give the costs before usage)."""
        rate = getattr(config, "audit_rate", None)
        return cls(
            **cls.config_arguments(config, task=task),
            expected_requests=config.expected_requests,
            audit_rate=0.01 if rate is None else float(rate),
            drift=getattr(config, "drift_detection", True),
            families=config_families(config),
            reserved=[c.name for c in config.untrained_cascades()],
        )

    # -- the mix -----------------------------------------------------------------------------

    def view(self, state: State) -> PolicyView:
        """Bounds, costs and the cheapest admissible mix for the current state."""
        state = TaskState.of(state)
        ref = self.reference
        restarted: tuple[str, ...] = ()
        suspicion: dict[str, float] = {}
        if self.drift:
            state = self._epoch_state(state)
        lower, upper, live = self._bounds(state)
        if self.drift:
            state, restarted, suspicion = self._watch(state, lower)
            if restarted:
                lower, upper, live = self._bounds(state)
        cost = {r: self.expected_cost(state, r) for r in (ref, *self.candidates)}

        # The target this request must meet.
        budget_left, eps_eff = self._target(state, lower)

        # Dropped candidates are no longer probed but may still be routed at their last bound.
        routes = (ref, *self.candidates)
        probe_overhead = self.probe_calls_cost(state, live, cost)
        costs = [cost[ref] + probe_overhead] + [cost[c] for c in self.candidates]
        bounds = [lower[r] for r in routes]
        allowed = self._allowed(state, routes, costs, bounds, upper, 1.0 - eps_eff)
        keep = [i for i, ok in enumerate(allowed) if ok]
        weights = solve_over(keep, costs, bounds, 1.0 - eps_eff)
        bound = sum(w * b for w, b in zip(weights, bounds, strict=True))

        requests = state.requests
        horizon = self._horizon(requests)
        # The economic choices (drop a candidate, probe beyond the mix) only move when evidence
        # or volume moves by a noticeable step, so they are cached; they never affect validity.
        econ_key = (
            tuple(int(state.evidence_of(c).compared) for c in self.candidates),
            tuple(live),
            round(math.log1p(requests) * 50),
        )
        econ = self._econ_cache.get(econ_key)
        if econ is None:
            # Candidates are valued at what they save once profiling is over: against the bare
            # reference cost, without today's probe overhead (which every live candidate inflates).
            bare = [cost[r] for r in routes]
            to_drop = self._hopeless(
                state, routes, live, bare, lower, upper, 1.0 - eps_eff, horizon
            )
            still_live = [c for c in live if c not in to_drop]
            explore = bool(still_live) and self._worth_probing(
                state, routes, still_live, costs, bounds, weights, lower, horizon
            )
            if len(self._econ_cache) > 10_000:
                self._econ_cache.clear()
            econ = self._econ_cache[econ_key] = (to_drop, explore)
        to_drop, explore = econ
        live_now = tuple(c for c in live if c not in to_drop)
        return PolicyView(
            routes=routes,
            live=live_now,
            lower=lower,
            upper=upper,
            cost=cost,
            weights=tuple(weights),
            effective_epsilon=eps_eff,
            budget_left=budget_left,
            to_drop=to_drop,
            bound=bound,
            explore=explore,
            probe_tags=self._probe_tags(state) if self.drift else {},
            restarted=restarted,
            suspicion=suspicion,
        )

    # What a budget changes (BatchBudgetPolicy): the target, the routes the LP may use, the
    # horizon probes must pay back over, and what exploring would free.

    def _target(self, state: TaskState, lower: Mapping[str, float]) -> tuple[float, float]:
        """(budget left, effective epsilon) for this request: online, no budget, epsilon."""
        return math.inf, self.epsilon

    def _allowed(
        self,
        state: TaskState,
        routes: Sequence[str],
        costs: Sequence[float],
        bounds: Sequence[float],
        upper: Mapping[str, float],
        target: float,
    ) -> list[bool]:
        """Which routes the LP may use: all of them online."""
        return [True] * len(routes)

    def _horizon(self, requests: float) -> float | None:
        """Requests left to pay probes back over (``None``: unknown)."""
        if self.expected_requests:
            return max(self.expected_requests - requests, 0.0)
        return None

    def _explored_bound(self, bound: float, predicted: float) -> float:
        """A route's bound after the probes exploring would buy."""
        return max(bound, predicted)

    def _explored_epsilon(
        self,
        state: TaskState,
        lower: Mapping[str, float],
        predicted: Mapping[str, float | None],
        horizon: float,
        extra: float,
    ) -> float:
        """The target's epsilon after the probes exploring would buy: online, unchanged."""
        return self.epsilon

    # -- drift epochs ------------------------------------------------------------------------

    def _alpha(self, state: TaskState, c: str) -> float:
        """``c``'s share of delta for its current epoch (all of it without drift detection),
        split over the grid's levels for a member of a threshold family."""
        alpha = self.alphas[c] * self.families.level_share(c)
        if not self.drift:
            return alpha
        return alpha * epoch_share(state.epoch_of(c))

    def _bounds(self, state: TaskState) -> tuple[dict[str, float], dict[str, float], list[str]]:
        lower, upper, live = super()._bounds(state)
        return self.families.certify(lower), upper, live

    def _epoch_state(self, state: TaskState) -> TaskState:
        """The state as the candidates' current epochs see it: a candidate in epoch ``e >= 1``
        has its probe counters replaced by that epoch's, so every rule downstream (bounds,
        dropping, exploring) sees only the probes decided since its last restart."""
        current = {}
        for c in self.candidates:
            e = state.epoch_of(c)
            if e:
                current[c] = state.in_epoch(c, e)
        return state.with_evidence(current)

    def _watch(
        self, state: TaskState, lower: Mapping[str, float]
    ) -> tuple[TaskState, tuple[str, ...], dict[str, float]]:
        """Run every candidate's change detector against the bound the mix relies on.

        Returns the state with the candidates whose detector fired moved to a new epoch (no
        probes yet, so no traffic until they are profiled again; this decision's increments
        record the restart), those candidates, and each detector's statistic as a share of its
        alarm threshold.
        """
        restarted: list[str] = []
        suspicion: dict[str, float] = {}
        moved, epochs = {}, {}
        for c in self.candidates:
            if lower[c] <= 0.0:
                continue
            statistic = self._detector(state, c, lower[c])
            if statistic < DRIFT_THRESHOLD:
                suspicion[c] = statistic / DRIFT_THRESHOLD
                continue
            # A family restarts as one: its members' epochs stay equal, so each epoch's fixed
            # sequence tests the agreements of one stretch of traffic at one share of alpha.
            for m in self.families.members_with(c):
                if m not in moved:
                    e = state.epoch_of(m) + 1
                    moved[m], epochs[m] = state.in_epoch(m, e), e
                    restarted.append(m)
        if moved:
            state = state.with_evidence(moved, epochs)
        return state, tuple(restarted), suspicion

    def _detector(self, state: TaskState, c: str, p0: float) -> float:
        """This process's CUSUM statistic for a drop of ``c``'s agreement below ``p0``, fed the
        outcomes of ``c``'s current epoch that arrived since it last looked."""
        e = state.epoch_of(c)
        evidence = state.evidence_of(c)
        compared, agreed = evidence.compared, evidence.agreed
        with self._detectors_lock:
            detector = self._detectors.get((c, e))
            if detector is None:  # a new epoch, or a process joining late: from what is there now
                detector = self._detectors[(c, e)] = CusumState(compared, agreed)
            return detector.update(compared, agreed, p0, drift_alternative(p0, self.epsilon))

    def _probe_tags(self, state: TaskState) -> dict[str, int]:
        return {c: state.epoch_of(c) for c in self.candidates}

    def _audit_chance(self, view: PolicyView, route: str) -> float:
        """The chance of auditing a request the mix sent to ``route``: the configured rate, rising
        to twenty times that while ``route``'s change detector climbs from half its threshold to
        the threshold, so that a drop is confirmed (or dismissed) in fewer requests. Below half
        the threshold (chance fluctuations, most of the time) the extra audits would cost
        reference calls for nothing. The draw never looks at the request, so audits stay a fair
        sample."""
        suspicion = view.suspicion.get(route, 0.0)
        rise = min(max(2.0 * suspicion - 1.0, 0.0), 1.0)
        return min(self.audit_rate * (1.0 + 19.0 * rise), 0.5)

    # -- probing economics -------------------------------------------------------------------

    def _worth_probing(
        self,
        state: TaskState,
        routes: Sequence[str],
        live: Sequence[str],
        costs: Sequence[float],
        bounds: Sequence[float],
        weights: Sequence[float],
        lower: Mapping[str, float],
        horizon: float | None,
    ) -> bool:
        """Would doubling the live candidates' probes pay for itself over the horizon?

        Predicts each live bound after twice as many probes at today's agreement rate, re-solves
        the mix (in batch mode with the budget those tighter bounds would free) and compares the
        saving over the remaining requests with the extra cost of the probes. Online tasks without
        ``expected_requests`` assume as many requests again as seen so far (at least 1,000).
        """
        requests = state.requests
        if horizon is None:
            horizon = max(requests, 1000.0)
        now = mix_cost(costs, weights)
        extra = 0.0
        future = list(bounds)
        predicted: dict[str, float | None] = dict.fromkeys(self.candidates, None)
        for i, r in enumerate(routes[1:], start=1):
            if r not in live:
                continue
            evidence = state.evidence_of(r)
            n, s = int(evidence.compared), int(evidence.agreed)
            n2 = max(int(_EXPLORE_GROWTH * n), n + 20)
            p_hat = s / n if n else 0.5
            predicted[r] = self.bound.lower(round(p_hat * n2), n2, self._alpha(state, r))
            extra = max(extra, n2 - n)
            future[i] = self._explored_bound(bounds[i], predicted[r])
        if extra >= horizon:
            return False
        eps = self._explored_epsilon(state, lower, predicted, horizon, extra)
        w_future = solve(costs, future, 1.0 - eps)
        gain = (now - mix_cost(costs, w_future)) * (horizon - extra)
        probe_premium = max(costs[0] - now, 0.0) * extra
        return gain > _EXPLORE_MARGIN * probe_premium

    def _hopeless(
        self,
        state: TaskState,
        routes: Sequence[str],
        live: Sequence[str],
        costs: Sequence[float],
        lower: Mapping[str, float],
        upper: Mapping[str, float],
        target: float,
        horizon: float | None,
    ) -> tuple[str, ...]:
        """Live candidates whose further probes cannot pay for themselves.

        A candidate is dropped when, even at its *upper* bound, it would not enter the cheapest
        mix. Once it has had a fair number of probes it is also dropped when no amount of further
        probing pays: for probe budgets of 2, 4, ... 64 times its current probes, the bounds every
        live candidate would then have at today's agreement rates give a predicted mix, and what
        this candidate adds to it over the remaining horizon must beat the cost of its probes (one
        such drop per call). Dropping only stops probing; it never touches validity.
        """
        out = []
        for i, c in enumerate(routes[1:], start=1):
            n = state.evidence_of(c).compared
            if c not in live:
                continue
            priced = state.calls.get(c) and state.calls.get(self.reference)
            if (
                priced
                and horizon is not None
                and not self._could_pay(c, costs, i, target, horizon, self._alpha(state, c))
            ):
                out.append(c)
                continue
            if n < MIN_PROBES_BEFORE_DROP:
                continue
            best = [lower[r] for r in routes]
            best[i] = upper[c]
            if not adds_value(costs, best, i, target):
                out.append(c)
        if horizon is None:
            return tuple(out)
        still = [c for c in live if c not in out]
        value = dict.fromkeys(still, -math.inf)
        for growth in _LOOKAHEAD_GROWTH:
            plain = [1.0]
            for r in routes[1:]:
                p = self._predicted_lower(state, r, growth) if r in still else 0.0
                plain.append(max(lower[r], p))
            for c in still:
                n = state.evidence_of(c).compared
                extra = max(n * (growth - 1.0), 20.0)
                if extra >= horizon:
                    continue
                # c at a hopeful prediction, its rivals at plain ones: a candidate is not
                # dropped for looking a little worse than a rival on a few noisy probes.
                i = routes.index(c)
                hopeful = list(plain)
                hopeful[i] = max(lower[c], self._predicted_lower(state, c, growth, hopeful=True))
                sub_costs = [x for j, x in enumerate(costs) if j != i]
                sub_bounds = [x for j, x in enumerate(plain) if j != i]
                cost_without = mix_cost(sub_costs, solve(sub_costs, sub_bounds, target))
                cost_with = mix_cost(costs, solve(costs, hopeful, target))
                net = (cost_without - cost_with) * (horizon - extra) - costs[i] * extra
                value[c] = max(value[c], net)
        # Candidates that substitute for each other each add little to a mix holding the rest,
        # so only the least valuable one goes per step; the others are re-valued without it.
        losers = [
            c
            for c in still
            if state.evidence_of(c).compared >= _MIN_PROBES_BEFORE_VALUE_DROP and value[c] <= 0
        ]
        if losers:
            out.append(min(losers, key=lambda c: value[c]))
        return tuple(out)

    def _could_pay(
        self,
        route: str,
        costs: Sequence[float],
        i: int,
        target: float,
        horizon: float,
        alpha: float,
    ) -> bool:
        """Could ``route`` repay its probes even if it agreed with the reference every time?

        Were every probe an agreement, after ``n`` probes its bound would be ``L(n, n)`` and it
        could take over a share ``eps / (1 - L)`` of the remaining requests, saving its price
        difference with the reference on each. If no number of probes makes that worth more
        than the probes' cost, probing it can only lose money: a candidate priced close to the
        reference on a small batch with a tight target is probed once, no more. (Judged only
        once both prices have been seen on real calls.)
        """
        saving = costs[0] - costs[i]
        if saving <= 0:
            return False
        eps = 1.0 - target
        for n in _PAYBACK_PROBES:
            if n >= horizon:
                break
            perfect = self.bound.lower(n, n, alpha)
            share = 1.0 if perfect >= target else eps / (1.0 - perfect)
            if saving * min(share, 1.0) * (horizon - n) > costs[i] * n:
                return True
        return False

    def _predicted_lower(
        self, state: TaskState, route: str, growth: float, *, hopeful: bool = False
    ) -> float:
        """The bound ``route`` would have after ``growth`` times its probes at today's rate.

        ``hopeful`` takes the rate at the route's *upper* bound instead of today's estimate, so
        that a few unlucky early probes do not get a good candidate dropped for good.
        """
        evidence = state.evidence_of(route)
        n = int(evidence.compared)
        if n == 0:
            return 0.0
        s = int(evidence.agreed)
        alpha = self._alpha(state, route)
        rate = self.bound.upper(s, n, alpha) if hopeful else s / n
        n2 = max(int(growth * n), n + 20)
        return self.bound.lower(round(rate * n2), n2, alpha)
