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
  agree by definition. With the default finite-population bound, candidate ``c`` is charged
  ``min(R_c, G_c)`` (items routed to it, bound on differing answers among its unprobed items)
  and the batch probes until committing the rest is cheaper than probing on (see
  :mod:`smart_core.policy.commitment`). With the paper's per-item bound every routed item is charged
  ``1 - L`` and routing stops short of ``epsilon * N`` by a margin for the chance fluctuation
  of the answers: the exact Poisson tail (see :func:`realized_budget`).
"""

from __future__ import annotations

import math
import random
import threading
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..engine.certificate import Certificate
from ..stats.confidence import (
    ConfidenceSequence,
    FinitePopulationSequence,
    make_confidence_sequence,
)
from ..stats.drift import DRIFT_THRESHOLD, CusumState, drift_alternative, epoch_share
from ..stats.mix import mix_cost, solve_mix
from . import keys as K
from .commitment import CandidateState, Commitment, cheapest_commitment

__all__ = [
    "Decision",
    "MixPolicy",
    "PolicyView",
    "current_epoch",
    "probe_failure",
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
#: Batch commitment: the first look-ahead (in probes) and the factor between look-aheads
#: (see :func:`_lookaheads`).
_FIRST_LOOKAHEAD = 10
_LOOKAHEAD_STEP = 1.4
#: Look-aheads count the candidates' calls of a probe this much extra (a margin for optimism).
_COMMIT_MARGIN = 1.0
#: Three-point Gauss-Hermite rule (weight, standard normal node) for expectations over a rate:
#: it matches a normal law's mean and variance.
_GAUSS_HERMITE = ((2 / 3, 0.0), (1 / 6, -math.sqrt(3.0)), (1 / 6, math.sqrt(3.0)))
#: A look-ahead may adapt its length to the scenario once the probes have grown this many
#: times: the estimate's spread is then a third of today's, so the scenarios (sqrt(3) of
#: today's standard errors apart) are told apart. Smaller values (3) value the option to stop
#: too highly and probe longer than pays on the paper bench (imdb at epsilon = 0.05).
_LEARNING_GROWTH = 8.0
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
    #: Online drift detection: per probed candidate, the epoch the probe belongs to, fixed at
    #: the decision so that its outcome lands in the counters it was drawn for.
    probe_tags: dict[str, int] = field(default_factory=dict)


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
    #: Batch commitment: the candidate taking the bulk of the rest of the batch, if any.
    committed: str | None = None
    #: Online drift detection: each candidate's epoch for a probe decided now, and the
    #: candidates whose detector has just fired (they start a new epoch with this decision).
    probe_tags: dict[str, int] = field(default_factory=dict)
    restarted: tuple[str, ...] = ()
    #: Online drift detection: each candidate's detector statistic as a share of its alarm
    #: threshold; audits of a suspected candidate are drawn more often to settle the question.
    suspicion: dict[str, float] = field(default_factory=dict)

    @property
    def mix(self) -> dict[str, float]:
        return {r: w for r, w in zip(self.routes, self.weights, strict=True) if w > 0}


@dataclass(frozen=True, slots=True)
class _BatchLook:
    """One look at a batch in commitment mode: where every look-ahead starts from.

    The look-aheads compare many ways of going on from the same state, so the state travels
    as one value rather than as the same five arguments to every step.
    """

    counters: Mapping[str, float]
    #: What the budget knows about each candidate (in ``MixPolicy.candidates`` order).
    states: tuple[CandidateState, ...]
    #: Cost of one answer per route.
    cost: Mapping[str, float]
    #: Items of the batch not yet decided.
    remaining: float
    #: The cheapest commitment today's bounds allow.
    now: Commitment


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
        drift: bool = False,
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
        # Online only: a batch is one finite population served in random order, with no
        # "recent" traffic to tell from the rest.
        self.drift = bool(drift) and not batch_size
        self._prior_costs = dict(prior_costs)
        self._econ_cache: dict[tuple, tuple[tuple[str, ...], bool]] = {}
        # Drift detectors of this process, per (candidate, epoch): see smart_core.stats.drift.
        self._detectors: dict[tuple[str, int], CusumState] = {}
        self._detectors_lock = threading.Lock()

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
            drift=getattr(config, "drift_detection", True),
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
        if self.finite_population and self.batch_size:
            return self._commitment_view(counters)
        ref = self.reference
        restarted: tuple[str, ...] = ()
        suspicion: dict[str, float] = {}
        if self.drift:
            counters = self._epoch_counters(counters)
        lower, upper, live = self._bounds(counters)
        if self.drift:
            counters, restarted, suspicion = self._watch(counters, lower)
            if restarted:
                lower, upper, live = self._bounds(counters)
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
            probe_tags=self._probe_tags(counters) if self.drift else {},
            restarted=restarted,
            suspicion=suspicion,
        )

    def _alpha(self, counters: Mapping[str, float], c: str) -> float:
        """``c``'s share of delta for its current epoch (all of it without drift detection)."""
        if not self.drift:
            return self.alphas[c]
        return self.alphas[c] * epoch_share(current_epoch(counters, c))

    def _epoch_counters(self, counters: Mapping[str, float]) -> Mapping[str, float]:
        """The counters as the candidates' current epochs see them: a candidate in epoch
        ``e >= 1`` has its probe counters replaced by that epoch's, so every rule downstream
        (bounds, dropping, exploring) sees only the probes decided since its last restart."""
        overlay: dict[str, float] = {}
        for c in self.candidates:
            e = current_epoch(counters, c)
            if e:
                overlay.update(_epoch_view(counters, c, e))
        return ChainMap(overlay, counters) if overlay else counters

    def _watch(
        self, counters: Mapping[str, float], lower: Mapping[str, float]
    ) -> tuple[Mapping[str, float], tuple[str, ...], dict[str, float]]:
        """Run every candidate's change detector against the bound the mix relies on.

        Returns the counters with the candidates whose detector fired moved to a new epoch (no
        probes yet, so no traffic until they are profiled again; this decision's increments
        record the restart), those candidates, and each detector's statistic as a share of its
        alarm threshold.
        """
        restarted: list[str] = []
        suspicion: dict[str, float] = {}
        overlay: dict[str, float] = {}
        for c in self.candidates:
            if lower[c] <= 0.0:
                continue
            statistic = self._detector(counters, c, lower[c])
            if statistic < DRIFT_THRESHOLD:
                suspicion[c] = statistic / DRIFT_THRESHOLD
                continue
            e = current_epoch(counters, c) + 1
            overlay.update(_epoch_view(counters, c, e))
            overlay[K.epoch(c)] = float(e)
            restarted.append(c)
        if overlay:
            counters = ChainMap(overlay, counters)
        return counters, tuple(restarted), suspicion

    def _detector(self, counters: Mapping[str, float], c: str, p0: float) -> float:
        """This process's CUSUM statistic for a drop of ``c``'s agreement below ``p0``, fed the
        outcomes of ``c``'s current epoch that arrived since it last looked."""
        e = current_epoch(counters, c)
        compared = counters.get(K.probes_of(c), 0.0)
        agreed = counters.get(K.agreements(c), 0.0)
        with self._detectors_lock:
            state = self._detectors.get((c, e))
            if state is None:  # a new epoch, or a process joining late: from what is there now
                state = self._detectors[(c, e)] = CusumState(compared, agreed)
            return state.update(compared, agreed, p0, drift_alternative(p0, self.epsilon))

    def _probe_tags(self, counters: Mapping[str, float]) -> dict[str, int]:
        return {c: current_epoch(counters, c) for c in self.candidates}

    def _bounds(
        self, counters: Mapping[str, float]
    ) -> tuple[dict[str, float], dict[str, float], list[str]]:
        """Lower and upper agreement bounds of every route (the reference's are 1), and the
        candidates not dropped."""
        ref = self.reference
        lower: dict[str, float] = {ref: 1.0}
        upper: dict[str, float] = {ref: 1.0}
        live = []
        for c in self.candidates:
            # One bound holding at every sample size, read at each size the counters offer.
            readings = _readings(counters, c)
            alpha = self._alpha(counters, c)
            lower[c] = max(self.bound.lower(s, n, alpha) for s, n in readings)
            # The upper bound only judges whether a candidate is worth probing: the compared
            # answers alone, since open probes counted as differing would drop a good candidate
            # whenever many probes are in flight.
            s, n = int(counters.get(K.agreements(c), 0)), int(counters.get(K.probes_of(c), 0))
            upper[c] = self.bound.upper(s, n, alpha)
            if not counters.get(K.dropped(c)):
                live.append(c)
        return lower, upper, live

    def _commitment_view(self, counters: Mapping[str, float]) -> PolicyView:
        """Batch mode with the finite-population bound: probe, or commit the rest of the batch.

        The remaining items are either probed (the reference answers, the live candidates are
        compared) or served by the cheapest commitment the budget allows now (see
        :mod:`smart_core.policy.commitment`). Probing goes on while probing longer and committing
        then is predicted, at today's agreement rates, to cost less than committing now.
        """
        assert self.batch_size is not None
        ref = self.reference
        lower, upper, live = self._bounds(counters)
        cost = {r: self.expected_cost(counters, r) for r in (ref, *self.candidates)}
        states = tuple(
            CandidateState(
                c, cost[c], counters.get(K.routed(c), 0.0), self._cap(counters, lower, c)
            )
            for c in self.candidates
        )
        remaining = max(self.batch_size - counters.get(K.REQUESTS, 0.0), 0.0)
        # Committing ends profiling: the reference items of a commitment are plain calls.
        now = cheapest_commitment(remaining, self._budget, ref, cost[ref], states)

        econ_key = (
            "commit",
            tuple(round(math.log1p(counters.get(K.probes_of(c), 0.0)) * 100) for c in live),
            tuple(round(math.log1p(st.routed) * 20) for st in states),
            tuple(live),
            round(math.log1p(remaining) * 100),
        )
        econ = self._econ_cache.get(econ_key)
        if econ is None:
            look = _BatchLook(counters, states, cost, remaining, now)
            econ = self._probe_or_commit(look, live)
            if len(self._econ_cache) > 10_000:
                self._econ_cache.clear()
            self._econ_cache[econ_key] = econ
        to_drop, probing = econ
        live_now = tuple(c for c in live if c not in to_drop)
        routes = (ref, *self.candidates)
        budget_left = self._budget - sum(st.charge for st in states)
        if probing and live_now:
            items, share_differing = {ref: 1.0}, 0.0
        else:
            live_now = ()
            items = {r: k / max(remaining, 1.0) for r, k in now.items.items()} or {ref: 1.0}
            # What the commitment adds to the charges, as a share of the remaining items.
            added = sum(
                min(st.routed + now.items.get(st.name, 0.0), st.cap) - st.charge for st in states
            )
            share_differing = added / max(remaining, 1.0)
        weights = tuple(items.get(r, 0.0) for r in routes)
        return PolicyView(
            routes=routes,
            live=live_now,
            lower=lower,
            upper=upper,
            cost=cost,
            weights=weights,
            effective_epsilon=min(1.0, max(0.0, budget_left / max(remaining, 1.0))),
            budget_left=budget_left,
            to_drop=to_drop,
            bound=1.0 - share_differing,
            explore=False,
            committed=None if live_now else now.saturated,
        )

    def batch_charges(
        self, counters: Mapping[str, float], lower: Mapping[str, float], route: str | None = None
    ) -> dict[str, float] | None:
        """Batch mode with the finite-population bound: per candidate ``c``, ``min(R_c, G_c)``,
        the most of the items routed to it that may differ from the reference's, counting one
        more item for ``route`` if given; ``None`` otherwise (online, or a per-item bound, whose
        promise is the budget alone). Their sum is what :meth:`_fits_budget` keeps within
        ``epsilon * N``, so it is the count a batch's certificate states."""
        if not (self.batch_size and self.finite_population):
            return None
        charges = {}
        for c in self.candidates:
            routed = counters.get(K.routed(c), 0.0) + (1.0 if c == route else 0.0)
            charges[c] = min(routed, self._cap(counters, lower, c)) if routed else 0.0
        return charges

    def _cap(self, counters: Mapping[str, float], lower: Mapping[str, float], c: str) -> float:
        """``G_c``: the most differing answers among ``c``'s unprobed items, from its bound."""
        assert self.batch_size is not None
        readings = _readings(counters, c)
        if len(readings) == 1:
            unprobed = max(self.batch_size - readings[0][1], 0.0)
            return (1.0 - lower[c]) * unprobed
        # Each reading bounds its own unprobed items (the prefix's include the probes held back).
        return min(
            (1.0 - self.bound.lower(s, n, self.alphas[c])) * max(self.batch_size - n, 0.0)
            for s, n in readings
        )

    def _probe_or_commit(
        self, look: _BatchLook, live: Sequence[str]
    ) -> tuple[tuple[str, ...], bool]:
        """Which live candidates stop being probed, and whether to keep probing at all.

        Probing ``d`` more items costs ``d`` probes and then commits with the bounds the live
        candidates would have at today's rates; the cheapest such ``d`` is compared with
        committing now. A candidate stops being probed when, even at its upper bound's rate
        (agreeing always, before eight probes), probing it alone is predicted to cost more than
        committing now.
        """
        ref, counters, now = self.reference, look.counters, look.now
        if not live:
            return (), False
        losers = []
        # Each candidate is valued alone against what the batch could do without any more
        # probes, so two candidates that could each carry the batch both stay until one does.
        for c in live:
            n = counters.get(K.probes_of(c), 0.0)
            if n >= _MIN_PROBES_BEFORE_DROP:
                rate = self._rate_estimate(counters, c, hopeful=True)
            elif counters.get(K.calls(c)) and counters.get(K.calls(ref)):
                rate = 1.0  # too few probes to judge quality; judged on price, agreeing always
            else:
                continue
            alone = self._best_continuation(look, [c], [(1.0, {c: rate})])
            if alone >= now.cost:
                losers.append(c)
        still = [c for c in live if c not in losers]
        if not still:
            return (), False
        best = self._continuation(look, still)
        # A candidate the best continuation does better without (a dearer substitute, or one
        # whose bound already does its job) stops being probed; one per call, so that of two
        # substitutes the better one stays.
        if len(still) > 1 and counters.get(K.PROBES, 0.0) >= _MIN_PROBES_BEFORE_DROP:
            options = []
            for c, without in self._costs_without_each(look, still).items():
                # c is valued at its upper bound's rate: a few unlucky probes must not get the
                # better of two substitutes dropped.
                hopeful = {c: self._rate_estimate(counters, c, hopeful=True)}
                with_c = self._continuation(look, still, fixed=hopeful)
                if without <= with_c:
                    options.append((without - with_c, c, without))
            if options:
                _, c, best = min(options)
                losers.append(c)
                still.remove(c)
        # Before committing, narrow the probes: each live candidate adds its calls to every
        # probe, so with many substitutes probing all of them may not pay while probing the
        # best few would. The one whose removal helps most goes first.
        while best >= now.cost and len(still) > 1:
            narrowed = self._costs_without_each(look, still)
            c = min(narrowed, key=lambda x: (narrowed[x], x))
            without = narrowed[c]
            if without >= best:
                break
            best = without
            losers.append(c)
            still.remove(c)
        if best >= now.cost:
            # Committing stops probing without dropping anyone: should the committed plan stop
            # fitting (outcomes of probes still in flight can widen a bound), probing resumes.
            return (), False
        return tuple(losers), True

    def _costs_without_each(self, look: _BatchLook, probed: Sequence[str]) -> dict[str, float]:
        """For each of ``probed``, the best continuation probing all the others."""
        return {c: self._continuation(look, [x for x in probed if x != c]) for c in probed}

    def _continuation(
        self,
        look: _BatchLook,
        probed: Sequence[str],
        fixed: Mapping[str, float] | None = None,
    ) -> float:
        """The best continuation probing ``probed``, over :meth:`_rate_scenarios` (with the
        rates in ``fixed`` held at the given values in every scenario). The committed
        candidate's rate is not spread: spreading it would only ever tighten its bound (a
        scenario may not undo today's evidence), a bias that would keep buying probes for a few
        more free items."""
        spread = [c for c in probed if c != look.now.saturated and c not in (fixed or {})]
        scenarios = [
            (w, {**rates, **(fixed or {})})
            for w, rates in self._rate_scenarios(look.counters, probed, spread)
        ]
        return self._best_continuation(look, probed, scenarios)

    def _best_continuation(
        self,
        look: _BatchLook,
        live: Sequence[str],
        scenarios: Sequence[tuple[float, Mapping[str, float]]],
    ) -> float:
        """The cheapest expected cost of probing ``live`` some items more, then
        committing; the expectation is over ``scenarios``, weighted agreement rates of the live
        candidates. Either the same number of probes is spent in every scenario, or, once the
        probes have grown ``_LEARNING_GROWTH`` times, each scenario stops where it is cheapest;
        either way the probes bought to learn that a candidate is poor are counted too."""
        ref, counters, cost, remaining = self.reference, look.counters, look.cost, look.remaining
        # Predictions are optimistic, and what a probe adds to a plain reference call (the
        # candidates' calls) is lost for good if it does not pay: it is counted with a margin.
        probe_cost = cost[ref] + (1.0 + _COMMIT_MARGIN) * sum(cost[c] for c in live)
        widths = {st.name: self._bound_width(counters, st.name, st.cap) for st in look.states}
        extras = _lookaheads(remaining)
        table = []  # table[j][k]: cost of probing extras[j] more, then committing, in scenario k
        for extra in extras:
            row = []
            for _, rates in scenarios:
                future = []
                for st in look.states:
                    if st.name in live:
                        n = counters.get(K.probes_of(st.name), 0.0) + extra
                        # A scenario below today's estimate must not undo today's evidence.
                        predicted = self._predicted_cap(rates[st.name], n, widths[st.name])
                        st = CandidateState(st.name, st.cost, st.routed, min(st.cap, predicted))
                    future.append(st)
                after = cheapest_commitment(remaining - extra, self._budget, ref, cost[ref], future)
                row.append(extra * probe_cost + after.cost)
            table.append(row)
        weights = [w for w, _ in scenarios]
        best = min(
            (sum(w * x for w, x in zip(weights, row, strict=True)) for row in table),
            default=math.inf,
        )
        # Probing is not a fixed plan: once the probes have grown enough to tell the scenarios
        # apart, the batch commits when the scenario it is in says so (the option to stop early
        # in a poor scenario is what makes a long look-ahead worth starting).
        probes = min((counters.get(K.probes_of(c), 0.0) for c in live), default=0.0)
        learned = _LEARNING_GROWTH * max(probes, _MIN_PROBES_BEFORE_DROP)
        start = next((j for j, extra in enumerate(extras) if extra >= learned), None)
        if start is not None:
            adaptive = sum(w * min(row[k] for row in table[start:]) for k, w in enumerate(weights))
            best = min(best, adaptive)
        return best

    def _rate_scenarios(
        self, counters: Mapping[str, float], live: Sequence[str], spread: Sequence[str]
    ) -> list[tuple[float, dict[str, float]]]:
        """Where the live candidates' agreement rates may lie: the estimates, and those of
        ``spread`` all ``sqrt(3)`` standard errors higher or lower (``_GAUSS_HERMITE``). Moving
        them together keeps three scenarios however many candidates there are; what matters for
        the decision is the chance that a candidate is better than it looks, which they keep."""
        out = []
        for weight, z in _GAUSS_HERMITE:
            rates = {}
            for c in live:
                p = self._rate_estimate(counters, c)
                sd = math.sqrt(p * (1.0 - p) / (counters.get(K.probes_of(c), 0.0) + 1.0))
                rates[c] = min(1.0, max(0.0, p + (z * sd if c in spread else 0.0)))
            out.append((weight, rates))
        return out

    def _rate_estimate(
        self, counters: Mapping[str, float], c: str, *, hopeful: bool = False
    ) -> float:
        """Today's agreement rate of ``c`` (or, ``hopeful``, the top of its interval)."""
        n = int(counters.get(K.probes_of(c), 0.0))
        s = int(counters.get(K.agreements(c), 0.0))
        if hopeful:
            return self.bound.upper(s, n, self.alphas[c])
        return (s + 0.5) / (n + 1.0)

    def _bound_width(
        self, counters: Mapping[str, float], c: str, cap: float
    ) -> tuple[float, float]:
        """(probes, squared width in standard errors) of ``c``'s bound today, to extrapolate it.

        Predictions only steer probing, so instead of the exact bound at every future count they
        use today's bound expressed in standard errors, widened by ``ln(n'/n)`` as a mixture
        bound's is: a thousand times cheaper, and close enough to choose when to stop.
        """
        assert self.batch_size is not None
        n = counters.get(K.probes_of(c), 0.0)
        if n < _MIN_PROBES_BEFORE_DROP:
            return max(n, 1.0), 2.0 * math.log(1.0 / self.alphas[c]) + 2.0
        p = (counters.get(K.agreements(c), 0.0) + 0.5) / (n + 1.0)
        lower = 1.0 - cap / max(self.batch_size - n, 1.0)
        z = max(p - lower, 0.0) / math.sqrt(p * (1.0 - p) / n)
        return n, z * z

    def _predicted_cap(self, rate: float, probes: float, width: tuple[float, float]) -> float:
        """``G_c`` after ``probes`` probes agreeing at ``rate`` (see :meth:`_bound_width`)."""
        assert self.batch_size is not None
        rest = self.batch_size - probes
        if rest <= 0:
            return 0.0
        n0, z2 = width
        p = min(rate, 1.0 - 0.5 / (probes + 1.0))
        z = math.sqrt(z2 + math.log(max(probes, n0) / n0))
        lower = min(1.0, max(0.0, rate - z * math.sqrt(p * (1.0 - p) / probes)))
        return (1.0 - lower) * rest

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
            predicted[r] = self.bound.lower(round(p_hat * n2), n2, self._alpha(counters, r))
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
        w_future = _solve(costs, future, 1.0 - eps)
        gain = (now - mix_cost(costs, w_future)) * (horizon - extra)
        probe_premium = max(costs[0] - now, 0.0) * extra
        return gain > _EXPLORE_MARGIN * probe_premium

    def _fits_budget(
        self,
        counters: Mapping[str, float],
        lower: Mapping[str, float],
        route: str | None,
        *,
        saturated: str | None = None,
    ) -> bool:
        """Batch mode: may one more item go to ``route`` without risking the batch's promise?
        (``None``: do the items already counted fit?)

        With the finite-population bound, the items sent to a candidate ``c`` differ at most
        ``min(R_c, G_c)`` times, ``R_c`` being how many were sent and ``G_c`` the bound on
        differing answers among all of ``c``'s unprobed items (the routed ones are among them).
        The sum over candidates must stay within ``epsilon * N``; checked before every routed item
        on the counters as they are, this holds at the end whatever happens after the last one.
        ``saturated`` names a candidate to charge its whole bound ``G_c`` now (it will get more
        items than that).
        """
        if not self.finite_population:
            need = 1.0 - lower[route] if route else 0.0
            return self._budget_left(counters, lower) >= need - 1e-9
        assert self.batch_size is not None
        used = 0.0
        for c in self.candidates:
            routed = counters.get(K.routed(c), 0.0) + (1.0 if c == route else 0.0)
            if c == saturated:
                routed = math.inf
            if routed:
                used += min(routed, self._cap(counters, lower, c))
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
            if (
                priced
                and horizon is not None
                and not self._could_pay(c, costs, i, target, horizon, self._alpha(counters, c))
            ):
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
                cost_without = mix_cost(sub_costs, _solve(sub_costs, sub_bounds, target))
                cost_with = mix_cost(costs, _solve(costs, hopeful, target))
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
        alpha = self._alpha(counters, route)
        rate = self.bound.upper(s, n, alpha) if hopeful else s / n
        n2 = max(int(growth * n), n + 20)
        return self.bound.lower(round(rate * n2), n2, alpha)

    # -- decisions ---------------------------------------------------------------------------

    def spends_budget(self, decision: Decision) -> bool:
        """Does ``decision`` take batch budget (an item sent to a candidate in batch mode)?
        Only such decisions need :meth:`confirm`."""
        return self.batch_size is not None and decision.route != self.reference

    def confirm(self, counters: Mapping[str, float], decision: Decision) -> Decision:
        """Re-check a reserved batch decision on counters read *after* its reservation.

        Deciders working side by side (threads, processes sharing a store) may read the same
        counters, and each item they send to a candidate fits the batch budget alone while
        together they overspend it. Read after the reservation, the counters hold this item and
        every one reserved before it, so the last of them to check sees the total. An item that
        no longer fits goes to the reference instead: the returned decision's ``increments``
        move its reservation there. Anything else is returned unchanged.
        """
        if not self.spends_budget(decision):
            return decision
        lower, _, _ = self._bounds(counters)
        if self._fits_budget(counters, lower, None):
            return decision
        return self.to_reference(decision)

    def to_reference(self, decision: Decision) -> Decision:
        """``decision`` (a request reserved for a candidate) moved to the reference: the
        returned decision's ``increments`` move the reservation (and any batch budget it took)
        there. Only ever safer: the reference's answer agrees by definition."""
        route, ref = decision.route, self.reference
        undo = {K.routed(route): -1.0, K.routed(ref): 1.0}
        if K.charged(route) in decision.increments:
            undo[K.charged(route)] = -decision.increments[K.charged(route)]
        cert = replace(decision.certificate, route=ref, probe=False)
        return Decision(
            route=ref, probe=False, probe_models=(), audit=False, certificate=cert, increments=undo
        )

    def _audit_rate(self, view: PolicyView, route: str) -> float:
        """The chance of auditing a request the mix sent to ``route``: the configured rate, rising
        to twenty times that while ``route``'s change detector climbs from half its threshold to
        the threshold, so that a drop is confirmed (or dismissed) in fewer requests. Below half
        the threshold (chance fluctuations, most of the time) the extra audits would cost
        reference calls for nothing. The draw never looks at the request, so audits stay a fair
        sample."""
        suspicion = view.suspicion.get(route, 0.0)
        rise = min(max(2.0 * suspicion - 1.0, 0.0), 1.0)
        return min(self.audit_rate * (1.0 + 19.0 * rise), 0.5)

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
        watched = live
        audit = False
        # A free item may not take budget the committed candidate's bound needs: the random
        # draws could otherwise overshoot the plan and bar the bulk of the batch.
        if (
            view.committed
            and route not in (ref, view.committed)
            and not self._fits_budget(counters, view.lower, route, saturated=view.committed)
        ):
            route = view.committed
        if route != ref:
            over_budget = self.batch_size is not None and not self._fits_budget(
                counters, view.lower, route
            )
            # With drift detection an audit always checks the candidate it replaces, dropped
            # from profiling or not: audits are what the change detector watches.
            audited = tuple(dict.fromkeys((*live, route))) if self.drift else live
            if over_budget or view.explore:
                route = ref
            elif self.audit_rate and audited and rng.random() < self._audit_rate(view, route):
                route, audit, watched = ref, True, audited
        probe = route == ref and bool(watched)
        inc: dict[str, float] = {K.REQUESTS: 1.0, K.routed(route): 1.0}
        tags = {c: view.probe_tags[c] for c in watched} if probe and view.probe_tags else {}
        if probe:
            inc[K.PROBES] = 1.0
            for c in watched:
                inc[K.probes_open(c)] = 1.0
                if tags.get(c, 0):
                    inc[K.epoch_open(c, tags[c])] = 1.0
        if audit:
            inc[K.AUDITS] = 1.0
        for c in view.restarted:
            inc[K.epoch(c)] = 1.0
        for c in view.to_drop:
            e = view.probe_tags.get(c, 0)
            inc[K.epoch_dropped(c, e) if e else K.dropped(c)] = 1.0
        if self.batch_size is not None and route != ref:
            inc[K.charged(route)] = 1.0 - view.lower[route]
        batch_size = budget = differing = None
        if self.batch_size is not None:
            # The count this item's answer is covered by: the items routed so far and this one.
            charges = self.batch_charges(counters, view.lower, route)
            batch_size, budget = self.batch_size, self.epsilon * self.batch_size
            differing = None if charges is None else sum(charges.values())
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
            batch_size=batch_size,
            budget=budget,
            differing_at_most=differing,
        )
        return Decision(
            route=route,
            probe=probe,
            probe_models=watched if probe else (),
            audit=audit,
            certificate=cert,
            increments=inc,
            probe_tags=tags,
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


def probe_outcome(decision: Decision | None, route: str, agreed: bool) -> dict[str, float]:
    """Counter increments for one candidate's compared answer on a probe (settling it);
    ``decision`` (the probe's) places it in its drift epoch, if it has one."""
    agree = 1.0 if agreed else 0.0
    inc = {K.probes_of(route): 1.0, K.agreements(route): agree, K.probes_open(route): -1.0}
    epoch = decision.probe_tags.get(route, 0) if decision is not None else 0
    if epoch:
        inc[K.epoch_probes(route, epoch)] = 1.0
        inc[K.epoch_agreements(route, epoch)] = agree
        inc[K.epoch_open(route, epoch)] = -1.0
    return inc


def probe_failure(decision: Decision | None, route: str) -> dict[str, float]:
    """Counter increments for a candidate whose call failed on a probe: a failure, not a
    disagreement (routed, the same failure falls back to the reference); the probe is settled."""
    inc = {K.failures(route): 1.0, K.probes_open(route): -1.0}
    epoch = decision.probe_tags.get(route, 0) if decision is not None else 0
    if epoch:
        inc[K.epoch_open(route, epoch)] = -1.0
    return inc


def current_epoch(counters: Mapping[str, float], c: str) -> int:
    """``c``'s drift epoch: how many times its detector has restarted it (0 at first)."""
    return int(counters.get(K.epoch(c), 0.0))


def _epoch_view(counters: Mapping[str, float], c: str, epoch: int) -> dict[str, float]:
    """``c``'s probe counters as epoch ``epoch`` >= 1 sees them (only its own probes)."""
    return {
        K.probes_of(c): counters.get(K.epoch_probes(c, epoch), 0.0),
        K.agreements(c): counters.get(K.epoch_agreements(c, epoch), 0.0),
        K.probes_open(c): counters.get(K.epoch_open(c, epoch), 0.0),
        K.dropped(c): counters.get(K.epoch_dropped(c, epoch), 0.0),
    }


def _readings(counters: Mapping[str, float], c: str) -> list[tuple[int, int]]:
    """(agreements, probes) of ``c`` to read its bound at: every decided probe (open ones as
    differing, :func:`_sampled`), and the settled prefix when a run supplies it."""
    out = [(int(counters.get(K.agreements(c), 0.0)), _sampled(counters, c))]
    if K.prefix_probes(c) in counters:
        n = int(counters[K.prefix_probes(c)])
        out.append((min(int(counters.get(K.prefix_agreements(c), 0.0)), n), n))
    return out


def _sampled(counters: Mapping[str, float], c: str) -> int:
    """Probes of ``c`` the bounds count: the compared ones and those still open (as differing).

    Which items are probed is drawn before any answer is seen, so the decided probes are a
    uniform sample; the compared ones alone need not be, when differing answers take longer.
    Counting an open probe as a differing answer can only lower the agreement seen.
    """
    return int(counters.get(K.probes_of(c), 0.0) + max(counters.get(K.probes_open(c), 0.0), 0.0))


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


def _lookaheads(remaining: float) -> list[float]:
    """Probe counts to look ahead to: geometric from the next few probes up, and from the end
    of the batch down (on a small target the best plan probes most of the batch)."""
    steps = []
    d = float(_FIRST_LOOKAHEAD)
    while d < remaining:
        steps.append(d)
        d = math.ceil(d * _LOOKAHEAD_STEP)
    return sorted({*steps, *(remaining - d for d in steps if remaining - d > d)})


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
