"""What every policy shares: the protocol the engine drives, decisions, and the code both modes
use (bounds from a task's state, the LP solve, the draw from a mix).

A policy decides, from a task's state alone, how to serve its next request: probe (the reference
answers, live candidates are called alongside and compared), or route to a model. It holds no
state of its own between calls, which is what lets several workers share one store: each derives
the same view from the same counters, and stale counters only make a bound older, never invalid,
because every bound holds at all times. One class per mode implements it:
:class:`~smart_core.policy.online.OnlineMixPolicy` (online, ``batch_size`` unset) and
:class:`~smart_core.policy.batch.BatchPlanPolicy` (batch mode), see
:func:`smart_core.policy.policy_for`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from ..stats.confidence import ConfidenceSequence
from ..stats.mix import mix_cost, solve_mix
from . import keys as K
from .certificate import Certificate
from .state import TaskState

__all__ = [
    "Decision",
    "Policy",
    "PolicyBase",
    "PolicyView",
    "State",
    "current_epoch",
    "probe_failure",
    "probe_outcome",
    "readings",
    "solve",
    "solve_over",
    "split_delta",
]

#: What the policies accept as a task's state: a :class:`TaskState`, or a store's plain
#: counters mapping (read into one with :meth:`TaskState.from_counters`).
State = TaskState | Mapping[str, float]

#: Probes a candidate gets before it may be dropped: enough to tell 0.3 from 0.9 agreement.
MIN_PROBES_BEFORE_DROP = 8


#: Calls' worth of weight the prior cost of a route that calls several models keeps against
#: its observed spend (:meth:`PolicyBase.expected_cost`).
PRIOR_CALLS = 8.0


def split_delta(
    delta: float,
    routes: Sequence[str],
    weights: Mapping[str, float] | None = None,
    families: Sequence[Sequence[str]] = (),
) -> dict[str, float]:
    """Split the failure probability over routes (union bound), by fixed data-free weights.

    A threshold family (``families``: disjoint groups of routes) takes one share, at the
    largest weight among its members, and every member gets that whole share: fixed-sequence
    testing certifies the family at one alpha (:mod:`smart_core.stats.fixed_sequence`)."""
    if not routes:
        return {}
    w = {r: float((weights or {}).get(r, 1.0)) for r in routes}
    if any(v <= 0 for v in w.values()):
        raise ValueError("delta weights must be positive")
    unit_of = {r: (r,) for r in routes}
    for family in families:
        for member in family:
            unit_of[member] = tuple(family)
    units = dict.fromkeys(unit_of.values())
    unit_weight = {u: max(w[r] for r in u) for u in units}
    total = sum(unit_weight.values())
    return {r: delta * unit_weight[unit_of[r]] / total for r in routes}


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
    #: Batch mode with screening: the stage the decision belongs to ("screening",
    #: "certifying"; "" without stages), fixed at the decision like ``probe_tags``: a
    #: certifying probe's outcomes also count in the certification stage's counters, a
    #: screening probe's costs in the screening stage's.
    stage: str = ""
    #: Batch mode with screening: the probed candidates for which this probe is part of their
    #: planned look (:mod:`smart_core.stats.fixed_look`), fixed at the decision.
    look: tuple[str, ...] = ()


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
    #: Batch mode with screening: "screening" for the batch's first requests, "certifying"
    #: after them, "" for a policy without stages (:mod:`smart_core.policy.screened_batch`).
    stage: str = ""
    #: Batch mode with screening: candidates whose planned look still wants probes.
    look: tuple[str, ...] = ()

    @property
    def mix(self) -> dict[str, float]:
        return {r: w for r, w in zip(self.routes, self.weights, strict=True) if w > 0}


@runtime_checkable
class Policy(Protocol):
    """What the engine drives: one policy per task, the same in every worker.

    Every method taking a task's state accepts a :class:`TaskState` or a store's plain counters.
    """

    task: str
    reference: str
    candidates: tuple[str, ...]
    epsilon: float
    delta: float
    #: The confidence sequence's name ("anytime", "finite-population", "clopper-pearson").
    method: str
    #: "request" (online) or "batch".
    mode: str
    #: Batch mode: the batch's size; ``None`` online.
    batch_size: int | None

    def view(self, state: State) -> PolicyView:
        """Bounds, costs and the plan for the current state."""
        ...

    def decide(self, state: State, rng: random.Random) -> Decision:
        """Draw the route for one request; the returned increments reserve it in the store."""
        ...

    def decide_from(self, view: PolicyView, state: State, rng: random.Random) -> Decision:
        """Like :meth:`decide` for a view already computed (simulations reuse views)."""
        ...

    def spends_budget(self, decision: Decision) -> bool:
        """Does ``decision`` take batch budget? Only such decisions need :meth:`confirm`."""
        ...

    def confirm(self, state: State, decision: Decision) -> Decision:
        """Re-check a reserved decision on a state read after its reservation."""
        ...

    def to_reference(self, decision: Decision) -> Decision:
        """``decision`` moved to the reference (its increments move the reservation)."""
        ...

    def batch_charges(
        self, state: State, lower: Mapping[str, float], route: str | None = None
    ) -> dict[str, float] | None:
        """Per candidate, the most of its routed items that may differ (``None`` if the policy
        states no such count)."""
        ...

    def expected_cost(self, state: State, model: str) -> float:
        """Mean cost of one call of ``model``."""
        ...


class PolicyBase:
    """The code every mode shares: bounds from the state, expected costs, and the decision
    drawn from a view. Subclasses provide :meth:`view` and, in batch mode, the budget checks."""

    mode = "request"
    batch_size: int | None = None
    #: Chance of auditing a request the mix sent to a candidate (online mode).
    audit_rate = 0.0
    #: Online drift detection (candidates restart in new epochs when their agreement drops).
    drift = False

    def __init__(
        self,
        *,
        task: str,
        reference: str,
        candidates: Sequence[str],
        epsilon: float,
        delta: float,
        prior_costs: Mapping[str, float],
        bound: ConfidenceSequence,
        delta_weights: Mapping[str, float] | None = None,
        route_models: Mapping[str, Sequence[str]] | None = None,
        bound_delta: float | None = None,
    ) -> None:
        self.task = task
        self.reference = reference
        self.candidates = tuple(candidates)
        self.epsilon = epsilon
        self.delta = delta
        self.bound = bound
        self.method = bound.name
        #: Each candidate's share of delta (of ``bound_delta``, the part of delta the bounds get).
        self.alphas = split_delta(
            delta if bound_delta is None else bound_delta, self.candidates, delta_weights
        )
        self._prior_costs = dict(prior_costs)
        #: Per candidate route, the models a probe of it calls besides the reference (a model
        #: route calls itself; a cascade its steps' models): a probe calls each model once,
        #: however many of its routes read the answer.
        self.route_models = {
            c: tuple(m for m in (route_models or {}).get(c, (c,)) if m != reference)
            for c in self.candidates
        }
        # Economic choices (drop, explore, commit) per evidence step: see the subclasses.
        self._econ_cache: dict[tuple, tuple[tuple[str, ...], bool]] = {}

    @staticmethod
    def config_arguments(config, *, task: str | None = None) -> dict:
        """The constructor arguments every mode takes from a :class:`~smart_core.SmartConfig`
        (prices give the costs before usage)."""
        table = config.price_table
        prior = {}
        for spec in [config.reference, *config.candidates]:
            price = spec.resolve_price(table)
            prior[spec.name] = (price.input + price.output) / 1e6  # per 1k-in + 1k-out tokens
        # A cascade whose learned scorer is not fit yet is no route (online mode reserves its
        # share of delta: OnlineMixPolicy.from_config).
        cascades = [c for c in config.cascade_list() if not c.untrained]
        for cascade in cascades:  # its steps' models, and the reference on escalation
            prior[cascade.name] = cascade.prior_cost(prior, config.reference.name)
        semantic = config.semantic_routes()  # a hit costs nothing, a miss the reference's call
        for name in semantic:  # half the requests assumed served from the cache, then learned
            prior[name] = 0.5 * prior[config.reference.name]
        return {
            "task": task or config.task,
            "reference": config.reference.name,
            "candidates": [c.name for c in config.candidates]
            + [c.name for c in cascades]
            + semantic,
            "epsilon": config.epsilon,
            "delta": config.delta,
            "prior_costs": prior,
            "method": config.method,
            "delta_weights": getattr(config, "delta_weights", None),
            "route_models": {c.name: c.models for c in cascades}
            | {name: (config.reference.name,) for name in semantic},  # probing them calls nothing
        }

    # -- derived quantities ------------------------------------------------------------------

    def view(self, state: State) -> PolicyView:  # pragma: no cover - every mode defines it
        raise NotImplementedError

    def expected_cost(self, state: State, model: str) -> float:
        """Mean observed cost per call; before any call, the price table scaled to what is seen.

        A route that calls several models (a cascade, a semantic cache route) spends very
        different amounts per request (its cheap steps alone, or those and the reference), so
        its first few observations are shrunk toward its prior as :data:`PRIOR_CALLS` calls
        would: one escalated first probe must not make a cascade look dearer than the
        reference and get it dropped for good. Costs steer which routes are probed and mixed,
        never a bound."""
        state = TaskState.of(state)
        n = state.calls.get(model, 0.0)
        spent = state.call_cost.get(model, 0.0)
        if n > 0 and self.route_models.get(model, (model,)) == (model,):  # one model's calls
            return spent / n
        prior = self._prior_costs.get(model, 0.0)
        # Scale the price-based guess by what we have seen of the reference, if anything.
        ref_n = state.calls.get(self.reference, 0.0)
        if ref_n > 0 and self._prior_costs.get(self.reference, 0.0) > 0:
            ref_mean = state.call_cost.get(self.reference, 0.0) / ref_n
            prior = prior * ref_mean / self._prior_costs[self.reference]
        if n > 0:
            return (prior * PRIOR_CALLS + spent) / (PRIOR_CALLS + n)
        return prior

    def probe_calls_cost(
        self, state: State, live: Sequence[str], cost: Mapping[str, float]
    ) -> float:
        """What a probe of ``live`` adds to the reference's call: each model its routes need,
        once (``cost`` gives a model's cost where known, else its expected cost)."""
        models = dict.fromkeys(m for c in live for m in self.route_models.get(c, (c,)))
        return sum(cost[m] if m in cost else self.expected_cost(state, m) for m in models)

    def _alpha(self, state: TaskState, c: str) -> float:
        """``c``'s share of delta for its bound now."""
        return self.alphas[c]

    def _bounds(self, state: TaskState) -> tuple[dict[str, float], dict[str, float], list[str]]:
        """Lower and upper agreement bounds of every route (the reference's are 1), and the
        candidates not dropped."""
        ref = self.reference
        lower: dict[str, float] = {ref: 1.0}
        upper: dict[str, float] = {ref: 1.0}
        live = []
        for c in self.candidates:
            evidence = state.evidence_of(c)
            alpha = self._alpha(state, c)
            # One bound holding at every sample size, read at each size the state offers.
            lower[c] = max(self.bound.lower(s, n, alpha) for s, n in readings(state, c))
            # The upper bound only judges whether a candidate is worth probing: the compared
            # answers alone, since open probes counted as differing would drop a good candidate
            # whenever many probes are in flight.
            upper[c] = self.bound.upper(int(evidence.agreed), int(evidence.compared), alpha)
            if not evidence.dropped:
                live.append(c)
        return lower, upper, live

    def batch_charges(
        self, state: State, lower: Mapping[str, float], route: str | None = None
    ) -> dict[str, float] | None:
        """Per candidate, the most of the items routed to it that may differ from the
        reference's; ``None`` here: the policy's promise is not such a count."""
        return None

    # -- batch budget hooks (online: no budget) ----------------------------------------------

    def _fits_budget(
        self, state: State, lower: Mapping[str, float], route: str | None, **_: str | None
    ) -> bool:
        """May one more item go to ``route`` (``None``: do the items counted fit)?"""
        return True

    def _steer(self, view: PolicyView, state: TaskState, route: str) -> str:
        """The route drawn from the mix, redirected if the plan says so (batch commitment)."""
        return route

    def _audit_chance(self, view: PolicyView, route: str) -> float:
        """The chance of auditing a request the mix sent to ``route``."""
        return self.audit_rate

    # -- decisions ---------------------------------------------------------------------------

    def spends_budget(self, decision: Decision) -> bool:
        """Does ``decision`` take batch budget (an item sent to a candidate in batch mode)?
        Only such decisions need :meth:`confirm`."""
        return self.batch_size is not None and decision.route != self.reference

    def confirm(self, state: State, decision: Decision) -> Decision:
        """Re-check a reserved batch decision on a state read *after* its reservation.

        Deciders working side by side (threads, processes sharing a store) may read the same
        counters, and each item they send to a candidate fits the batch budget alone while
        together they overspend it. Read after the reservation, the counters hold this item and
        every one reserved before it, so the last of them to check sees the total. An item that
        no longer fits goes to the reference instead: the returned decision's ``increments``
        move its reservation there. Anything else is returned unchanged.
        """
        if not self.spends_budget(decision):
            return decision
        state = TaskState.of(state)
        lower, _, _ = self._bounds(state)
        if self._fits_budget(state, lower, None):
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

    def decide(self, state: State, rng: random.Random) -> Decision:
        """Draw the route for one request; the returned increments reserve it in the store."""
        state = TaskState.of(state)
        return self.decide_from(self.view(state), state, rng)

    def decide_from(self, view: PolicyView, state: State, rng: random.Random) -> Decision:
        """Like :meth:`decide` for a view already computed (simulations reuse views)."""
        state = TaskState.of(state)
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
        route = self._steer(view, state, route)
        if route != ref:
            over_budget = not self._fits_budget(state, view.lower, route)
            # With drift detection an audit always checks the candidate it replaces, dropped
            # from profiling or not: audits are what the change detector watches.
            audited = tuple(dict.fromkeys((*live, route))) if self.drift else live
            if over_budget or view.explore:
                route = ref
            elif self.audit_rate and audited and rng.random() < self._audit_chance(view, route):
                route, audit, watched = ref, True, audited
        probe = route == ref and bool(watched)
        inc: dict[str, float] = {K.REQUESTS: 1.0, K.routed(route): 1.0}
        tags = {c: view.probe_tags[c] for c in watched} if probe and view.probe_tags else {}
        certifying = probe and view.stage == "certifying"
        if view.stage == "screening":
            inc[K.SCREENED] = 1.0
        if probe:
            inc[K.PROBES] = 1.0
            for c in watched:
                inc[K.probes_open(c)] = 1.0
                if certifying:
                    inc[K.cert_open(c)] = 1.0
                if certifying and c in view.look:
                    inc[K.look_open(c)] = 1.0
                if tags.get(c, 0):
                    inc[K.epoch_open(c, tags[c])] = 1.0
        if audit:
            inc[K.AUDITS] = 1.0
        for c in view.restarted:
            inc[K.epoch(c)] = 1.0
        for c in view.to_drop:
            e = view.probe_tags.get(c, 0)
            if view.stage == "certifying":
                inc[K.cert_dropped(c)] = 1.0
            else:
                inc[K.epoch_dropped(c, e) if e else K.dropped(c)] = 1.0
        if self.batch_size is not None and route != ref:
            inc[K.charged(route)] = 1.0 - view.lower[route]
        batch_size = budget = differing = None
        if self.batch_size is not None:
            # The count this item's answer is covered by: the items routed so far and this one.
            charges = self.batch_charges(state, view.lower, route)
            batch_size, budget = self.batch_size, self.epsilon * self.batch_size
            differing = None if charges is None else sum(charges.values())
        cert = Certificate(
            task=self.task,
            route=route,
            probe=probe,
            mix=view.mix,
            bound=view.bound,
            probes=int(state.probes),
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
            stage=view.stage,
            look=tuple(c for c in view.look if c in watched) if certifying else (),
        )


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
    if decision is not None and decision.stage == "certifying":
        inc[K.cert_probes(route)] = 1.0
        inc[K.cert_agreements(route)] = agree
        inc[K.cert_open(route)] = -1.0
        if route in decision.look:
            inc[K.look_probes(route)] = 1.0
            inc[K.look_agreements(route)] = agree
            inc[K.look_open(route)] = -1.0
    return inc


def probe_failure(decision: Decision | None, route: str) -> dict[str, float]:
    """Counter increments for a candidate whose call failed on a probe: a failure, not a
    disagreement (routed, the same failure falls back to the reference); the probe is settled."""
    inc = {K.failures(route): 1.0, K.probes_open(route): -1.0}
    epoch = decision.probe_tags.get(route, 0) if decision is not None else 0
    if epoch:
        inc[K.epoch_open(route, epoch)] = -1.0
    if decision is not None and decision.stage == "certifying":
        inc[K.cert_open(route)] = -1.0
        if route in decision.look:
            # A failed call is no answer: the look's sample stays the answers it got (the
            # look's size is read once all its probes are settled).
            inc[K.look_open(route)] = -1.0
    return inc


def current_epoch(state: State, c: str) -> int:
    """``c``'s drift epoch: how many times its detector has restarted it (0 at first)."""
    if isinstance(state, TaskState):
        return state.epoch_of(c)
    return int(state.get(K.epoch(c), 0.0))


def readings(state: TaskState, c: str) -> list[tuple[int, int]]:
    """(agreements, probes) of ``c`` to read its bound at: every decided probe (open ones as
    differing, :attr:`Evidence.sampled <smart_core.policy.state.Evidence.sampled>`), and the
    settled prefix when a run supplies it."""
    evidence = state.evidence_of(c)
    out = [(int(evidence.agreed), evidence.sampled)]
    if state.prefix is not None and c in state.prefix:
        s, n = state.prefix[c]
        out.append((min(s, n), n))
    return out


def solve(costs: Sequence[float], bounds: Sequence[float], target: float) -> list[float]:
    """The cheapest mix of ``costs`` whose bound meets ``target`` (the reference, first with
    bound 1, always makes one feasible)."""
    weights = solve_mix(costs, bounds, target)
    assert weights is not None  # the reference (bound 1) is always feasible
    return weights


def solve_over(
    keep: Sequence[int], costs: Sequence[float], bounds: Sequence[float], target: float
) -> list[float]:
    """The cheapest mix over the routes ``keep`` only, as weights over all routes."""
    weights = [0.0] * len(costs)
    sub = solve([costs[i] for i in keep], [bounds[i] for i in keep], target)
    for i, w in zip(keep, sub, strict=True):
        weights[i] = w
    return weights


def adds_value(costs: Sequence[float], bounds: Sequence[float], i: int, target: float) -> bool:
    """Does route ``i`` lower the cost of the cheapest mix?"""
    sub_costs = [x for j, x in enumerate(costs) if j != i]
    sub_bounds = [x for j, x in enumerate(bounds) if j != i]
    without = mix_cost(sub_costs, solve(sub_costs, sub_bounds, target))
    return mix_cost(costs, solve(costs, bounds, target)) < without
