"""The routing policy: from a task's counters to a decision for the next request.

Per request the policy (1) bounds every live candidate's agreement with the reference,
(2) solves the two-constraint LP for the cheapest mix whose guaranteed agreement meets the
target, and (3) draws a route from that mix. Whatever the mix sends to the reference becomes a
*probe*: the live candidates are called too and their agreement is recorded. Probing therefore
costs only the candidates' calls, it is an unbiased sample of traffic (the draw never looks at
the request), and it fades out by itself as the bounds tighten. Candidates whose best case cannot
pay back further probes are dropped.

Two guarantees are available:

* ``request`` mode (online): every request is answered by a mix whose agreement is at least
  ``1 - epsilon`` with probability ``1 - delta``, simultaneously at all times.
* ``batch`` mode (``batch_size`` known): with probability ``1 - delta`` the *realized* share of
  the batch's answers that differ is at most ``epsilon``. Reference answers already returned
  agree by definition; every routed item is charged ``1 - L`` at its decision and re-valued at
  the current bound, and routing stops short of ``epsilon * N`` by a margin for the chance
  fluctuation of the answers: the exact Poisson tail (see :func:`realized_budget`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import _keys as K
from ._certificate import Certificate
from ._confidence import ConfidenceSequence, FinitePopulationSequence, make_confidence_sequence
from ._mix import mix_cost, solve_mix

__all__ = [
    "Decision",
    "MixPolicy",
    "PolicyView",
    "probe_outcome",
    "realization_share",
    "realized_budget",
    "split_delta",
]

#: Probes a candidate gets before it may be dropped: enough to tell 0.3 from 0.9 agreement.
_MIN_PROBES_BEFORE_DROP = 8
#: Batch mode: probes a candidate needs before batch items may be sent to it.
_MIN_PROBES_BEFORE_ROUTING = 20
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


def split_delta(
    delta: float, routes: Sequence[str], weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Split the failure probability over routes (union bound), by fixed data-free weights."""
    if not routes:
        return {}
    w = {r: float((weights or {}).get(r, 1.0)) for r in routes}
    if any(v <= 0 for v in w.values()):
        raise ValueError("delta weights must be positive")
    total = sum(w.values())
    return {r: delta * w[r] / total for r in routes}


@dataclass(frozen=True, slots=True)
class Decision:
    """How to serve one request.

    ``route`` is the model whose answer the user gets. When ``probe`` is true that is the
    reference, and ``probe_models`` are the candidates to call alongside it so their agreement can
    be measured; ``audit`` marks probes drawn on requests the mix had sent to a candidate.
    ``increments`` must be written to the store as soon as the decision is taken: they reserve
    the request (and its share of a batch budget) before any model is called.
    """

    route: str
    probe: bool
    probe_models: tuple[str, ...]
    audit: bool
    certificate: Certificate
    increments: dict[str, float]


@dataclass(frozen=True, slots=True)
class PolicyView:
    """Everything the policy derived from one snapshot of counters."""

    routes: tuple[str, ...]  # reference first, then every candidate
    live: tuple[str, ...]  # candidates still being probed
    lower: dict[str, float]
    upper: dict[str, float]
    cost: dict[str, float]
    weights: tuple[float, ...]
    effective_epsilon: float
    budget_left: float  # batch mode: disagreement budget left (in requests); inf online
    to_drop: tuple[str, ...]
    bound: float
    explore: bool  # more probes than the mix needs are expected to pay for themselves

    @property
    def mix(self) -> dict[str, float]:
        return {r: w for r, w in zip(self.routes, self.weights, strict=True) if w > 0}


class MixPolicy:
    """Decides probe vs route for a task from its counters alone (stateless between calls).

    Holding no state of its own is what lets several workers share one store: each derives the
    same view from the same counters, and stale counters only make a bound older, never invalid,
    because the bound holds at every time.
    """

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
        batch_size: int | None = None,
        expected_requests: int | None = None,
        audit_rate: float = 0.0,
        delta_weights: Mapping[str, float] | None = None,
        bound: ConfidenceSequence | None = None,
    ) -> None:
        self.task = task
        self.reference = reference
        self.candidates = tuple(candidates)
        self.epsilon = epsilon
        self.delta = delta
        self.batch_size = batch_size
        self.expected_requests = expected_requests
        self.audit_rate = audit_rate
        self.bound = bound or make_confidence_sequence(method, epsilon, batch_size)
        self.method = self.bound.name
        # Batch mode promises the *realized* share of the batch. The finite-population bound
        # covers the batch's own answers directly; a per-item bound (Clopper-Pearson) needs part
        # of delta for the chance fluctuation of the answers around their probabilities.
        self.finite_population = isinstance(self.bound, FinitePopulationSequence)
        self.realization_delta = (
            delta * realization_share(epsilon, batch_size)
            if batch_size and not self.finite_population
            else 0.0
        )
        self.alphas = split_delta(delta - self.realization_delta, self.candidates, delta_weights)
        self._budget = (
            realized_budget(epsilon * batch_size, self.realization_delta) if batch_size else 0.0
        )
        self.mode = "batch" if batch_size else "request"
        self._prior_costs = dict(prior_costs)
        self._econ_cache: dict[tuple, tuple[tuple[str, ...], bool]] = {}

    @classmethod
    def from_config(cls, config, *, task: str | None = None) -> MixPolicy:
        """Build from a :class:`~smart_core.SmartConfig` (prices give the costs before usage)."""
        table = config.price_table
        prior = {}
        for spec in [config.reference, *config.candidates]:
            price = spec.resolve_price(table)
            prior[spec.name] = (price.input + price.output) / 1e6  # per 1k-in + 1k-out tokens
        return cls(
            task=task or config.task,
            reference=config.reference.name,
            candidates=[c.name for c in config.candidates],
            epsilon=config.epsilon,
            delta=config.delta,
            prior_costs=prior,
            method=config.method,
            batch_size=config.batch_size,
            expected_requests=config.expected_requests,
            audit_rate=_audit_rate(config),
            delta_weights=getattr(config, "delta_weights", None),
        )

    # -- derived quantities ------------------------------------------------------------------

    def expected_cost(self, counters: Mapping[str, float], model: str) -> float:
        """Mean observed cost per call; before any call, the price table scaled to what is seen."""
        n = counters.get(K.calls(model), 0.0)
        if n > 0:
            return counters.get(K.call_cost(model), 0.0) / n
        # Scale the price-based guess by what we have seen of the reference, if anything.
        ref_n = counters.get(K.calls(self.reference), 0.0)
        prior = self._prior_costs.get(model, 0.0)
        if ref_n > 0 and self._prior_costs.get(self.reference, 0.0) > 0:
            ref_mean = counters.get(K.call_cost(self.reference), 0.0) / ref_n
            return prior * ref_mean / self._prior_costs[self.reference]
        return prior

    def view(self, counters: Mapping[str, float]) -> PolicyView:
        """Bounds, costs and the cheapest admissible mix for the current counters."""
        ref = self.reference
        lower: dict[str, float] = {ref: 1.0}
        upper: dict[str, float] = {ref: 1.0}
        live = []
        for c in self.candidates:
            n = int(counters.get(K.probes_of(c), 0))
            s = int(counters.get(K.agreements(c), 0))
            alpha = self.alphas[c]
            lower[c] = self.bound.lower(s, n, alpha)
            upper[c] = self.bound.upper(s, n, alpha)
            if not counters.get(K.dropped(c)):
                live.append(c)
        cost = {r: self.expected_cost(counters, r) for r in (ref, *self.candidates)}

        # The target this request must meet.
        budget_left = math.inf
        eps_eff = self.epsilon
        requests = counters.get(K.REQUESTS, 0.0)
        if self.batch_size:
            budget_left = self._budget_left(counters, lower)
            remaining = max(self.batch_size - requests, 1.0)
            eps_eff = min(1.0, max(0.0, budget_left / remaining))

        # Dropped candidates are no longer probed but may still be routed at their last bound.
        routes = (ref, *self.candidates)
        probe_overhead = sum(cost[c] for c in live)
        costs = [cost[ref] + probe_overhead] + [cost[c] for c in self.candidates]
        bounds = [lower[r] for r in routes]
        allowed = [True] * len(routes)
        if self.batch_size:
            allowed = self._batch_allowed(counters, routes, costs, bounds, upper, 1.0 - eps_eff)
        keep = [i for i, ok in enumerate(allowed) if ok]
        if self.finite_population and len(keep) > 2:
            # Candidates the budget check would take now come first; the others only if none.
            fits = [i for i in keep[1:] if self._fits_budget(counters, lower, routes[i])]
            keep = _best_pair([0, *fits] if fits else keep, costs, bounds, 1.0 - eps_eff)
        weights = _solve_over(keep, costs, bounds, 1.0 - eps_eff)
        bound = sum(w * b for w, b in zip(weights, bounds, strict=True))

        horizon = None
        if self.batch_size:
            horizon = max(self.batch_size - requests, 0.0)
        elif self.expected_requests:
            horizon = max(self.expected_requests - requests, 0.0)
        # The economic choices (drop a candidate, probe beyond the mix) only move when evidence
        # or volume moves by a noticeable step, so they are cached; they never affect validity.
        econ_key = (
            tuple(int(counters.get(K.probes_of(c), 0.0)) for c in self.candidates),
            tuple(live),
            round(math.log1p(requests) * 50),
        )
        econ = self._econ_cache.get(econ_key)
        if econ is None:
            # Candidates are valued at what they save once profiling is over: against the bare
            # reference cost, without today's probe overhead (which every live candidate inflates).
            bare = [cost[r] for r in routes]
            to_drop = self._hopeless(
                counters, routes, live, bare, lower, upper, 1.0 - eps_eff, horizon
            )
            still_live = [c for c in live if c not in to_drop]
            explore = bool(still_live) and self._worth_probing(
                counters, routes, still_live, costs, bounds, weights, lower, horizon
            )
            if len(self._econ_cache) > 10_000:
                self._econ_cache.clear()
            econ = self._econ_cache[econ_key] = (to_drop, explore)
        to_drop, explore = econ
        live_now = tuple(c for c in live if c not in to_drop)
        if self.finite_population and horizon:
            # A reference answer costs the same with or without a probe, and a candidate the mix
            # uses must keep being observed for its bound to tighten as the batch proceeds (the
            # budget check holds its items back until then), unless it could never pay for that.
            bare = [cost[r] for r in routes]
            used = tuple(
                c
                for i, c in enumerate(routes[1:], start=1)
                if weights[i] > 0
                and c not in live_now
                and self._could_pay(c, bare, i, 1.0 - eps_eff, horizon)
            )
            live_now = (*live_now, *used)
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
        )

    def _plan(self, costs: Sequence[float], bounds: Sequence[float], target: float) -> list[float]:
        """The cheapest mix the budget check could certify: any LP mix, or with the
        finite-population bound one candidate with the reference (see :func:`_best_pair`)."""
        if not self.finite_population or len(costs) <= 2:
            return _solve(costs, bounds, target)
        return _solve_over(
            _best_pair(range(len(costs)), costs, bounds, target), costs, bounds, target
        )

    def _batch_allowed(
        self,
        counters: Mapping[str, float],
        routes: Sequence[str],
        costs: Sequence[float],
        bounds: Sequence[float],
        upper: Mapping[str, float],
        target: float,
    ) -> list[bool]:
        """Batch mode: which routes the mix may use without wasting the batch budget.

        Budget spent on a candidate that turns out poor is lost for good, so a candidate needs a
        few probes first and must belong to the cheapest mix under a middle estimate of where
        its bound will end up. Barred routes are left out of the LP (the reference never is).
        """
        mid = [1.0] + [0.5 * (lo + upper[r]) for lo, r in zip(bounds[1:], routes[1:], strict=True)]
        planned = solve_mix(costs, mid, target) or [1.0] + [0.0] * (len(routes) - 1)
        out = [True]
        for i, r in enumerate(routes[1:], start=1):
            seen = counters.get(K.probes_of(r), 0.0)
            ready = counters.get(K.dropped(r)) or (seen >= _MIN_PROBES_BEFORE_ROUTING)
            out.append(bool(ready and planned[i] > 0))
        return out

    def _worth_probing(
        self,
        counters: Mapping[str, float],
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
        requests = counters.get(K.REQUESTS, 0.0)
        if horizon is None:
            horizon = max(requests, 1000.0)
        now = mix_cost(costs, weights)
        extra = 0.0
        future = list(bounds)
        predicted = dict.fromkeys(self.candidates, None)
        for i, r in enumerate(routes[1:], start=1):
            if r not in live:
                continue
            n = int(counters.get(K.probes_of(r), 0.0))
            s = int(counters.get(K.agreements(r), 0.0))
            n2 = max(int(_EXPLORE_GROWTH * n), n + 20)
            p_hat = s / n if n else 0.5
            predicted[r] = self.bound.lower(round(p_hat * n2), n2, self.alphas[r])
            extra = max(extra, n2 - n)
            if bounds[i] > 0 or self.batch_size is None:
                future[i] = max(bounds[i], predicted[r])
        if extra >= horizon:
            return False
        eps = self.epsilon
        if self.batch_size:
            # The budget the tighter bounds would leave, counted exactly as decisions count it.
            tighter = {c: max(predicted[c] or 0.0, lower[c]) for c in self.candidates}
            eps = self._budget_left(counters, tighter) / max(horizon - extra, 1.0)
            eps = min(1.0, max(0.0, eps))
        w_future = self._plan(costs, future, 1.0 - eps)
        gain = (now - mix_cost(costs, w_future)) * (horizon - extra)
        probe_premium = max(costs[0] - now, 0.0) * extra
        return gain > _EXPLORE_MARGIN * probe_premium

    def _fits_budget(
        self, counters: Mapping[str, float], lower: Mapping[str, float], route: str
    ) -> bool:
        """Batch mode: may one more item go to ``route`` without risking the batch's promise?

        With the finite-population bound, the items sent to a candidate ``c`` differ at most
        ``min(R_c, G_c)`` times, ``R_c`` being how many were sent and ``G_c`` the bound on
        differing answers among all of ``c``'s unprobed items (the routed ones are among them).
        The sum over candidates must stay within ``epsilon * N``; checked before every routed item
        on the counters as they are, this holds at the end whatever happens after the last one.
        """
        if not self.finite_population:
            return self._budget_left(counters, lower) >= 1.0 - lower[route]
        assert self.batch_size is not None
        used = 0.0
        for c in self.candidates:
            routed = counters.get(K.routed(c), 0.0) + (1.0 if c == route else 0.0)
            if routed:
                unprobed = max(self.batch_size - counters.get(K.probes_of(c), 0.0), 0.0)
                used += min(routed, (1.0 - lower[c]) * unprobed)
        return used <= self._budget + 1e-9

    def _budget_left(self, counters: Mapping[str, float], lower: Mapping[str, float]) -> float:
        """Batch mode: expected differing answers the batch may still afford, in requests.

        Each item sent to a candidate was charged ``1 - L`` at its decision; the items sent to a
        route are also covered by ``(1 - L_now)`` each, since every bound holds at all times. The
        smaller of the two is used, so a bound that tightens frees budget and one that slips
        back never overdraws it. The total is capped below ``epsilon * N`` by the margin that
        keeps the *realized* share within epsilon (see :func:`realized_budget`).
        """
        assert self.batch_size is not None
        used = 0.0
        for c in self.candidates:
            routed = counters.get(K.routed(c), 0.0)
            if routed:
                now = routed * (1.0 - lower[c])
                if self.finite_population:
                    # A plan, not the check: items routed so far at the rate their candidate's
                    # unprobed items are bounded to differ (:meth:`_fits_budget` is the check).
                    used += now
                else:
                    used += min(counters.get(K.charged(c), now), now)
        return self._budget - used

    def _hopeless(
        self,
        counters: Mapping[str, float],
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
            n = counters.get(K.probes_of(c), 0.0)
            if c not in live:
                continue
            priced = counters.get(K.calls(c)) and counters.get(K.calls(self.reference))
            if priced and horizon is not None and not self._could_pay(c, costs, i, target, horizon):
                out.append(c)
                continue
            if n < _MIN_PROBES_BEFORE_DROP:
                continue
            best = [lower[r] for r in routes]
            best[i] = upper[c]
            if not _adds_value(costs, best, i, target):
                out.append(c)
        if horizon is None:
            return tuple(out)
        still = [c for c in live if c not in out]
        value = dict.fromkeys(still, -math.inf)
        for growth in _LOOKAHEAD_GROWTH:
            plain = [1.0]
            for r in routes[1:]:
                p = self._predicted_lower(counters, r, growth) if r in still else 0.0
                plain.append(max(lower[r], p))
            for c in still:
                n = counters.get(K.probes_of(c), 0.0)
                extra = max(n * (growth - 1.0), 20.0)
                if extra >= horizon:
                    continue
                # c at a hopeful prediction, its rivals at plain ones: a candidate is not
                # dropped for looking a little worse than a rival on a few noisy probes.
                i = routes.index(c)
                hopeful = list(plain)
                hopeful[i] = max(lower[c], self._predicted_lower(counters, c, growth, hopeful=True))
                sub_costs = [x for j, x in enumerate(costs) if j != i]
                sub_bounds = [x for j, x in enumerate(plain) if j != i]
                cost_without = mix_cost(sub_costs, self._plan(sub_costs, sub_bounds, target))
                cost_with = mix_cost(costs, self._plan(costs, hopeful, target))
                net = (cost_without - cost_with) * (horizon - extra) - costs[i] * extra
                value[c] = max(value[c], net)
        # Candidates that substitute for each other each add little to a mix holding the rest,
        # so only the least valuable one goes per step; the others are re-valued without it.
        losers = [
            c
            for c in still
            if counters.get(K.probes_of(c), 0.0) >= _MIN_PROBES_BEFORE_VALUE_DROP and value[c] <= 0
        ]
        if losers:
            out.append(min(losers, key=lambda c: value[c]))
        return tuple(out)

    def _could_pay(
        self, route: str, costs: Sequence[float], i: int, target: float, horizon: float
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
            perfect = self.bound.lower(n, n, self.alphas[route])
            share = 1.0 if perfect >= target else eps / (1.0 - perfect)
            if saving * min(share, 1.0) * (horizon - n) > costs[i] * n:
                return True
        return False

    def _predicted_lower(
        self,
        counters: Mapping[str, float],
        route: str,
        growth: float,
        *,
        hopeful: bool = False,
    ) -> float:
        """The bound ``route`` would have after ``growth`` times its probes at today's rate.

        ``hopeful`` takes the rate at the route's *upper* bound instead of today's estimate, so
        that a few unlucky early probes do not get a good candidate dropped for good.
        """
        n = int(counters.get(K.probes_of(route), 0.0))
        if n == 0:
            return 0.0
        s = int(counters.get(K.agreements(route), 0.0))
        rate = self.bound.upper(s, n, self.alphas[route]) if hopeful else s / n
        n2 = max(int(growth * n), n + 20)
        return self.bound.lower(round(rate * n2), n2, self.alphas[route])

    # -- decisions ---------------------------------------------------------------------------

    def decide(self, counters: Mapping[str, float], rng: random.Random) -> Decision:
        """Draw the route for one request; the returned increments reserve it in the store."""
        view = self.view(counters)
        return self.decide_from(view, counters, rng)

    def decide_from(
        self, view: PolicyView, counters: Mapping[str, float], rng: random.Random
    ) -> Decision:
        """Like :meth:`decide` for a view already computed (simulations reuse views)."""
        ref = self.reference
        u = rng.random()
        acc = 0.0
        route = view.routes[-1]
        for r, w in zip(view.routes, view.weights, strict=True):
            acc += w
            if u < acc:
                route = r
                break
        live = view.live
        audit = False
        if route != ref:
            over_budget = self.batch_size is not None and not self._fits_budget(
                counters, view.lower, route
            )
            if over_budget or view.explore:
                route = ref
            elif self.audit_rate and live and rng.random() < self.audit_rate:
                route, audit = ref, True
        probe = route == ref and bool(live)
        inc: dict[str, float] = {K.REQUESTS: 1.0, K.routed(route): 1.0}
        if probe:
            inc[K.PROBES] = 1.0
        if audit:
            inc[K.AUDITS] = 1.0
        for c in view.to_drop:
            inc[K.dropped(c)] = 1.0
        if self.batch_size is not None and route != ref:
            inc[K.charged(route)] = 1.0 - view.lower[route]
        cert = Certificate(
            task=self.task,
            route=route,
            probe=probe,
            mix=view.mix,
            bound=view.bound,
            probes=int(counters.get(K.PROBES, 0.0)),
            epsilon=self.epsilon,
            delta=self.delta,
            method=self.method,
            mode=self.mode,
            effective_epsilon=view.effective_epsilon,
            bounds={r: view.lower[r] for r in view.routes},
        )
        return Decision(
            route=route,
            probe=probe,
            probe_models=live if probe else (),
            audit=audit,
            certificate=cert,
            increments=inc,
        )


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


def probe_outcome(decision: Decision, route: str, agreed: bool) -> dict[str, float]:
    """Counter increments for one candidate's compared answer on a probe."""
    return {K.probes_of(route): 1.0, K.agreements(route): 1.0 if agreed else 0.0}


def _solve(costs: Sequence[float], bounds: Sequence[float], target: float) -> list[float]:
    weights = solve_mix(costs, bounds, target)
    assert weights is not None  # the reference (bound 1) is always feasible
    return weights


def _solve_over(
    keep: Sequence[int], costs: Sequence[float], bounds: Sequence[float], target: float
) -> list[float]:
    """The cheapest mix over the routes ``keep`` only, as weights over all routes."""
    weights = [0.0] * len(costs)
    sub = _solve([costs[i] for i in keep], [bounds[i] for i in keep], target)
    for i, w in zip(keep, sub, strict=True):
        weights[i] = w
    return weights


def _best_pair(
    keep: Sequence[int] | range, costs: Sequence[float], bounds: Sequence[float], target: float
) -> list[int]:
    """The reference and the one candidate (of ``keep``) whose two-route mix is cheapest.

    With the finite-population bound a candidate's differing answers are bounded over *all* its
    unprobed items, so two candidates sharing the routed items would each be charged for all of
    them; a plan with one candidate (plus the reference, whose share is probes) is what the
    budget check can certify.
    """
    best, best_cost = [keep[0]], math.inf
    for i in keep[1:]:
        pair = [keep[0], i]
        w = solve_mix([costs[j] for j in pair], [bounds[j] for j in pair], target)
        if w is None:
            continue
        c = mix_cost([costs[j] for j in pair], w)
        if c < best_cost:
            best, best_cost = pair, c
    return best


def _adds_value(costs: Sequence[float], bounds: Sequence[float], i: int, target: float) -> bool:
    """Does route ``i`` lower the cost of the cheapest mix?"""
    sub_costs = [x for j, x in enumerate(costs) if j != i]
    sub_bounds = [x for j, x in enumerate(bounds) if j != i]
    without = mix_cost(sub_costs, _solve(sub_costs, sub_bounds, target))
    return mix_cost(costs, _solve(costs, bounds, target)) < without


def _audit_rate(config) -> float:
    rate = getattr(config, "audit_rate", None)
    if rate is None:
        return 0.0 if config.batch_size else 0.01
    return float(rate)
