"""Batch mode in two stages: screen the candidates, then certify the promising few on fresh
probes with the whole of delta, the leader with looks planned in advance.

Why: a bound that must hold for K candidates at once gives each ``delta / K`` (the union bound),
and every probe calls every candidate still in the running. With ten candidates most of the
probes pay for bounds and calls of candidates that never carry the batch. Here the batch's first
requests are the *screening* stage: every candidate worth its price is probed on them, nothing is
routed to a candidate, and candidates told apart from the leader (:func:`contenders`) stop being
probed. Screening ends once one contender is left (after at least :data:`MIN_SCREEN` requests)
or after ``screen`` requests. From what screening saw alone (agreements and costs on its
probes), :func:`certification_shares` splits delta among the few contenders left. In the
*certification* stage each contender's bound counts only the probes decided after screening, and
the batch runs as :class:`~smart_core.policy.batch.BatchPlanPolicy` on the rest of the batch.
The leader's share is spent mostly on looks at sizes screening fixes
(:mod:`smart_core.stats.sequential_looks`: exact pass marks for a grid of sizes, calibrated
together, are narrower than a bound read at every size, and the grid catches a screening
estimate that was off either way; past :data:`GRID_LIMIT` items one look) and the rest on the
bound valid at every size, for when the looks fall short.

Why the guarantee holds (docs/guarantee.md, "Screening"): the batch is processed in random
order, and screening's end is a stopping time of what it saw (call that F0). Given F0, the items
after screening are the rest of the batch, still in uniformly random order: a finite population
of ``N - R0`` items from which the certification probes are drawn without replacement, the
setting of :class:`~smart_core.stats.confidence.FinitePopulationSequence` and of the looks.
The shares, the looks' sizes and their level are functions of F0 alone and sum to delta, so
given F0 the chance that any certification bound ever fails is at most delta; hence
unconditionally too. Screening's items are all answered by the reference and differ nowhere, so
the whole budget ``epsilon * N`` goes to the certification stage's items, which the charges
``min(R_c, G_c)`` of the batch plan cover.

When it pays: certification is hard (the best candidate's agreement close to ``1 - epsilon``)
and candidates are many. When one candidate is far above the target the plain plan certifies it
in a few probes, and screening's probes are lost; so :func:`default_screen` screens only with
many candidates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..stats.confidence import make_confidence_sequence
from ..stats.sequential_looks import LookPlan
from .base import MIN_PROBES_BEFORE_DROP, PolicyBase, PolicyView, State, split_delta
from .batch import BatchPlanPolicy
from .leader_looks import GRID_LIMIT, look_cap, pending_looks, plan_leader_looks
from .state import Evidence, TaskState

__all__ = [
    "Prospect",
    "ScreenedBatchPolicy",
    "certification_shares",
    "contenders",
    "default_screen",
    "priced_out",
    "prospects",
    "screen_size",
]

#: At most this many candidates share delta in the certification stage.
MAX_CERTIFIED = 3
#: The leader's share of delta when other contenders are certified beside it.
LEAD_SHARE = 0.7
#: A candidate stays a contender while it may beat the leader by more than this share of the
#: leader's predicted saving.
MATTERS = 0.25
#: Share of the leader's delta spent on its planned looks; the rest keeps the bound valid at
#: every size, for when the looks fall short. A grid of looks falls short less often than one.
LOOK_SHARE = 0.85
ONE_LOOK_SHARE = 0.5
#: Weight of a screening agreement or answer beside a certification one in the certification
#: plan's predictions (less than one: the leader is the candidate screening saw at its best).
SCREEN_WEIGHT = 0.5
#: Candidates from which a batch is screened by default.
SCREEN_FROM = 6
#: The most of the batch screening may take.
SCREEN_SHARE = 0.08
#: Standard errors apart two predicted savings must be before screening tells them apart.
SEPARATION = 1.0
#: A candidate whose call costs at least this share of the reference's is held back in
#: screening while its outcomes are out (:meth:`ScreenedBatchPolicy._held_back`).
DEAR = 0.25
#: Requests screened at least (three times the probes a candidate gets before it may be
#: dropped), unless ``screen`` is smaller.
MIN_SCREEN = 3 * MIN_PROBES_BEFORE_DROP


def default_screen(batch_size: int, candidates: int) -> int:
    """Most requests screened before certification starts; 0 (no screening) where it cannot
    pay.

    With few candidates concentrating delta gains little (``ln K`` in the bound's width) while
    the screening probes are lost to certification: on the paper's four candidates the plain
    plan saves more (docs/benchmarks.md). With :data:`SCREEN_FROM` candidates or more, at most
    8 % of the batch, between 24 requests (three times the probes a candidate gets before it
    may be dropped) and 240. Screening stops earlier once one candidate is told apart.
    """
    if candidates < SCREEN_FROM or batch_size < 400:
        return 0
    return screen_size(batch_size)


def screen_size(batch_size: int) -> int:
    """The most requests a batch of ``batch_size`` screens, when it screens."""
    return int(min(240, max(MIN_SCREEN, round(SCREEN_SHARE * batch_size))))


@dataclass(frozen=True, slots=True)
class Prospect:
    """What certifying one candidate is predicted to save, at its screening estimate and one
    standard error either side (:func:`_predicted_saving`)."""

    value: float
    low: float
    high: float
    #: The saving were it to agree always: the most certifying it could ever bring, whatever
    #: its agreement turns out to be (a price, not an estimate).
    best: float = math.inf


def prospects(
    evidence: Mapping[str, Evidence],
    costs: Mapping[str, float | None],
    reference_cost: float | None,
    *,
    budget: float,
    rest: int,
    alpha: float,
) -> dict[str, Prospect]:
    """Each candidate's :class:`Prospect` from its screening counters and costs (candidates
    with no compared probe, no known cost, or a cost at or above the reference's are left out).
    """
    if not reference_cost or reference_cost <= 0:
        return {}
    out = {}
    for c, ev in evidence.items():
        cost = costs.get(c)
        if cost is None or cost >= reference_cost or ev.compared <= 0:
            continue
        p = (min(ev.agreed, ev.compared) + 0.5) / (ev.compared + 1.0)
        sd = math.sqrt(p * (1.0 - p) / (ev.compared + 1.0))

        def saving(q: float, cost: float = cost) -> float:
            return _predicted_saving(q, cost, reference_cost, budget, rest, alpha)

        out[c] = Prospect(
            saving(p), saving(p - SEPARATION * sd), saving(p + SEPARATION * sd), saving(1.0)
        )
    return out


def priced_out(found: Mapping[str, Prospect]) -> list[str]:
    """Candidates whose best case, agreeing always, saves less than another's low end: their
    price alone rules them out, however few probes they have had. A candidate priced near the
    reference (most of the reference's price, each probe paying both) goes here after a few
    probes instead of the :data:`MIN_SCREEN` that telling agreements apart needs."""
    floor = max((pr.low for pr in found.values()), default=-math.inf)
    return sorted(c for c, pr in found.items() if pr.best < floor)


def contenders(found: Mapping[str, Prospect]) -> list[str]:
    """The candidates still worth certifying, best first: the leader (largest predicted
    saving), and those that may still beat it by more than :data:`MATTERS` of its saving (their
    high end that far above the leader's low end). Two candidates equally good stop mattering
    as soon as both are known well enough: which of them is certified then changes little."""
    live = [c for c, pr in found.items() if pr.high > 0]
    if not live:
        return []
    live.sort(key=lambda c: (-found[c].value, c))
    lead = found[live[0]]
    margin = MATTERS * max(lead.value, 0.0)
    return [live[0]] + [c for c in live[1:] if found[c].high > lead.low + margin]


def certification_shares(found: Mapping[str, Prospect]) -> dict[str, float]:
    """Each certified candidate's share of delta (summing to 1), from the screening stage
    alone: the leader :data:`LEAD_SHARE` (all of it if alone), the other contenders (at most
    :data:`MAX_CERTIFIED` in all) the rest in proportion to their predicted saving. Everything
    here must be a function of screening's counters only: the shares are what the
    certification bounds spend."""
    chosen = contenders(found)[:MAX_CERTIFIED]
    if not chosen:
        return {}
    if len(chosen) == 1:
        return {chosen[0]: 1.0}
    others = chosen[1:]
    total = sum(max(found[c].value, 1e-12) for c in others)
    shares = {chosen[0]: LEAD_SHARE}
    for c in others:
        shares[c] = (1.0 - LEAD_SHARE) * max(found[c].value, 1e-12) / total
    return shares


def _predicted_saving(
    p: float, cost: float, reference_cost: float, budget: float, rest: int, alpha: float
) -> float:
    """Predicted saving of certifying a candidate of agreement ``p`` alone on ``rest`` items:
    the best over probe counts ``n`` of (items it may then take) x (reference cost - its cost)
    less the ``n`` probes' reference calls and its own. The bound after ``n`` probes is taken
    as ``p`` less a one-look bound's width, ``sqrt(2 ln(1/alpha) p (1 - p) / n)``: a rough
    guide, enough to rank candidates.

    A probed item is not routed, so its reference call is already a cost the items term does
    not save; charging it once more per probe is a margin against the leader screening saw at
    its best, which needs more probes than predicted. It ranks candidates needing fewer probes
    higher. Without it (and with a narrower width) arc_challenge replays picked mixtral over
    Yi-34B more often and saved less (docs/cascades.md, "Measured")."""
    best = 0.0
    n = 10.0
    q = min(max(p, 1e-3), 1.0 - 1e-3)
    z2 = 2.0 * math.log(1.0 / alpha)
    while n < rest:
        differing = max(1.0 - p + math.sqrt(z2 * q * (1.0 - q) / n), 1e-9)
        items = min(rest - n, budget / differing)
        best = max(best, items * (reference_cost - cost) - n * (reference_cost + cost))
        n = math.ceil(n * 1.25)
    return best


class ScreenedBatchPolicy(PolicyBase):
    """Batch mode with a screening stage: the first ``screen`` requests probe every candidate;
    the rest of the batch certifies the few screening chose, with all of delta among them."""

    mode = "batch"
    realization_delta = 0.0

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
        method: str = "anytime",
        delta_weights: Mapping[str, float] | None = None,
        route_models: Mapping[str, Sequence[str]] | None = None,
        screen: int | None = None,
    ) -> None:
        args = dict(
            task=task,
            reference=reference,
            candidates=candidates,
            epsilon=epsilon,
            delta=delta,
            prior_costs=prior_costs,
            batch_size=batch_size,
            method=method,
        )
        # Screening's own economics (which candidates are not worth even screening) use the
        # plain plan; its bounds are never used to route.
        self._screening = BatchPlanPolicy(
            **args, delta_weights=delta_weights, route_models=route_models
        )
        super().__init__(
            **{k: v for k, v in args.items() if k not in ("batch_size", "method")},
            bound=self._screening.bound,
            delta_weights=delta_weights,
            route_models=route_models,
        )
        self.batch_size = batch_size
        self.screen = screen_size(batch_size) if screen is None else screen
        if not 1 <= self.screen < batch_size:
            raise ValueError(
                f"screen must be between 1 and batch_size - 1 ({batch_size - 1}), got {screen}; "
                "0 (no screening) is the plain BatchPlanPolicy"
            )
        self._method = method
        self._plans: dict[tuple, BatchPlanPolicy | None] = {}
        self._prospect_cache: dict[tuple, dict[str, Prospect]] = {}
        # The last state's stage: a decision reads it in the view, the steer, the budget check
        # and the charges, all on the same state object (see _stage).
        self._last: tuple[TaskState, _Stage] | None = None

    @classmethod
    def from_config(cls, config, *, task: str | None = None) -> ScreenedBatchPolicy:
        return cls(
            **cls.config_arguments(config, task=task),
            batch_size=config.batch_size,
            screen=getattr(config, "screen", None),
        )

    # -- stages ------------------------------------------------------------------------------

    def _stage(self, state: TaskState) -> _Stage:
        """Where the batch is for ``state``: screening; waiting for screening's last outcomes;
        or certifying, with the plan (``None`` if no candidate is worth certifying) and the
        state it reads. Worked out once per state object: one decision asks four times."""
        last = self._last
        if last is not None and last[0] is state:
            return last[1]
        if self._screening_stage(state):
            stage = _Stage("screening")
        elif any(_screening_evidence(state, c).open > 0 for c in self.candidates):
            stage = _Stage("waiting")  # the shares cannot be fixed before screening is all in
        else:
            plan = self._plan(state)
            cert = None if plan is None else self._certification_state(state)
            stage = _Stage("certifying", plan, cert)
        self._last = (state, stage)
        return stage

    def _screening_stage(self, state: TaskState) -> bool:
        """Is the next request screened? Screening is the batch's first requests, until at most
        ``screen`` of them or until it has told one candidate apart (after at least
        :data:`MIN_SCREEN`); once a request is decided in certification it is over for good."""
        if state.requests > state.screened or state.requests >= self.screen:
            return False
        if self._settled(state) < min(MIN_SCREEN, self.screen):
            return True
        return len(self._found_contenders(state)) > 1

    def _settled(self, state: TaskState) -> int:
        """Screening probes whose outcomes are in: what screening has seen, as opposed to what
        it has asked. With many requests in flight the two part ways, and judging on the
        requests asked would end screening (no candidate compared yet means no contender left)
        or drop candidates on a handful of outcomes. Any rule of what screening saw keeps the
        guarantee: its end and its choices are functions of F0."""
        held = max((_screening_evidence(state, c).open for c in self.candidates), default=0.0)
        return int(state.screened - held)

    def _prospects(self, state: TaskState, rest: int) -> dict[str, Prospect]:
        """Each candidate's prospect on ``rest`` items from the screening counters as they are
        now (the plan reads them once screening's probes are all settled, with ``rest`` fixed
        by screening's length: nothing the certification stage does may move the shares)."""
        screened = {c: _screening_evidence(state, c) for c in self.candidates}
        costs = {m: _screen_mean(state, m) for m in (self.reference, *self.candidates)}
        key = (
            rest,
            tuple((c, ev.compared, ev.agreed, ev.dropped) for c, ev in screened.items()),
            tuple(costs.items()),
        )
        found = self._prospect_cache.get(key)
        if found is None:
            found = prospects(
                {c: ev for c, ev in screened.items() if not ev.dropped},
                {c: costs[c] for c in self.candidates},
                costs[self.reference],
                budget=self.epsilon * self.batch_size,
                rest=rest,
                alpha=self.delta * LEAD_SHARE * LOOK_SHARE,
            )
            if len(self._prospect_cache) > 10_000:
                self._prospect_cache.clear()
            self._prospect_cache[key] = found
        return found

    def _found_contenders(self, state: TaskState) -> list[str]:
        """The contenders while screening, valued on the items not yet decided."""
        return contenders(self._prospects(state, max(self.batch_size - int(state.requests), 1)))

    def _plan(self, state: TaskState) -> BatchPlanPolicy | None:
        """The certification stage's plan, once screening is over and all its outcomes are in
        (``None`` if no candidate is worth certifying)."""
        rest = self.batch_size - int(state.screened)
        found = self._prospects(state, rest)
        free = self._cheapest(state)
        key = (state.screened, tuple(sorted(found.items())), free)
        if key not in self._plans:
            shares = certification_shares(found)
            self._plans[key] = self._certification_plan(state, shares, rest, free)
        return self._plans[key]

    def _cheapest(self, state: TaskState) -> str | None:
        """The candidate cheapest on screening's probes, if cheaper than the reference: the one
        to take the items the budget lets go uncertified (each charged as a differing answer),
        whether screening chose it or not. Screening chooses by what certifying would save;
        an item charged in full needs no certificate, only a low price."""
        ref = _screen_mean(state, self.reference)
        if ref is None:
            return None
        costs = {c: v for c in self.candidates if (v := _screen_mean(state, c)) is not None}
        cheaper = [c for c, v in costs.items() if v < ref]
        return min(cheaper, key=lambda c: (costs[c], c), default=None)

    def _certification_plan(
        self, screened: TaskState, shares: Mapping[str, float], rest: int, free: str | None
    ) -> BatchPlanPolicy | None:
        if not shares and free is None:
            return None
        chosen = sorted(shares, key=lambda c: (-shares[c], c))
        budget = self.epsilon * self.batch_size  # the whole batch's: screening differs nowhere
        looks: dict[str, LookPlan] = {}
        # Looks for the leader alone: the others' bounds hold at every size (a look the plan
        # would probe on for must be worth its probes, which only the leader's is predicted to
        # be).
        for c in chosen[:1]:
            ev = _screening_evidence(screened, c)
            share = LOOK_SHARE if rest <= GRID_LIMIT else ONE_LOOK_SHARE
            plan = plan_leader_looks(
                ev.agreed, ev.compared, rest, budget, self.delta * shares[c] * share
            )
            if plan is not None:
                looks[c] = plan
        weights = {
            c: shares[c] - (looks[c].alpha / self.delta if c in looks else 0.0) for c in chosen
        }
        free = None if free in chosen else free
        return _CertificationPlan(
            task=self.task,
            reference=self.reference,
            candidates=chosen + ([free] if free else []),
            epsilon=min(1.0, budget / rest),
            delta=self.delta * sum(weights.values()),
            prior_costs=self._prior_costs,
            batch_size=rest,
            method=self._method,
            delta_weights=weights,
            route_models=self.route_models,
            bound=make_confidence_sequence(self._method, self.epsilon, rest),
            looks=looks,
            screened={
                c: (int(ev.agreed), int(ev.compared))
                for c in chosen
                for ev in (_screening_evidence(screened, c),)
            },
            free=free,
        )

    def _certification_state(self, state: TaskState) -> TaskState:
        """The certification stage seen as a batch of its own: its requests, and each
        candidate's certification counters as its evidence."""
        return replace(
            state,
            requests=max(state.requests - state.screened, 0.0),
            probes=max(state.probes - state.screened, 0.0),
            evidence=state.cert_evidence,
            prefix=state.cert_prefix,
            epochs={},
            epoch_evidence={},
        )

    # -- the policy --------------------------------------------------------------------------

    def view(self, state: State) -> PolicyView:
        state = TaskState.of(state)
        stage = self._stage(state)
        if stage.name == "screening":
            return self._screening_view(state)
        if stage.plan is None:
            return self._pending_view(state, waiting=stage.name == "waiting")
        return self._widen(stage.plan.view(stage.state))

    def _screening_view(self, state: TaskState) -> PolicyView:
        """Probe every candidate the plain plan would still probe; route nothing to them."""
        plain = self._screening.view(state)
        to_drop = list(plain.to_drop)
        settled = self._settled(state)
        if settled >= MIN_PROBES_BEFORE_DROP:
            found = self._prospects(state, max(self.batch_size - int(state.requests), 1))
            # Priced out: cannot pay back even agreeing always. Told apart from the leader
            # (once enough screening outcomes are in): no longer worth screening.
            out = set(priced_out(found))
            if settled >= MIN_SCREEN:
                out |= set(found) - set(contenders(found))
            to_drop += [c for c in found if c in out and c not in to_drop]
        ref = self.expected_cost(state, self.reference)
        live = tuple(
            c
            for c in self.candidates
            if not state.evidence_of(c).dropped
            and c not in to_drop
            and not self._held_back(state, c, ref)
        )
        return self._reference_view(state, live, tuple(to_drop), "screening")

    def _held_back(self, state: TaskState, c: str, reference_cost: float) -> bool:
        """A dear candidate (a call at least :data:`DEAR` of the reference's) joins one
        screening probe, which prices it, and then skips them until
        :data:`MIN_PROBES_BEFORE_DROP` screening outcomes are in, when :func:`priced_out` may
        first drop it: what rules it out is its price against the cheap candidates' prospects,
        not its own agreements. Joining every probe up to then cost arc_challenge 14 calls of
        claude-v1 and -v2 at 0.8 of the reference's each, 2 % of a batch's spend (ε = 0.10).
        After that, it skips them while that many of its own are out: with 32 items in flight it
        was probed 32 times before the first came back. Which candidates a probe calls may
        follow anything seen so far (screening only chooses); cheap ones keep every probe, so
        screening learns as fast as before."""
        if self.expected_cost(state, c) < DEAR * reference_cost:
            return False
        own = _screening_evidence(state, c)
        if self._settled(state) < MIN_PROBES_BEFORE_DROP:
            return own.sampled >= 1
        return own.open >= MIN_PROBES_BEFORE_DROP

    def _pending_view(self, state: TaskState, *, waiting: bool) -> PolicyView:
        """Screening is over: while its last outcomes are out (``waiting``), or if nothing is
        worth certifying, items go to the reference; the former probe the candidates screening
        kept, as certification probes."""
        live = tuple(c for c in self.candidates if waiting and not state.evidence_of(c).dropped)
        return self._reference_view(state, live, (), "certifying")

    def _reference_view(
        self, state: TaskState, live: tuple[str, ...], to_drop: tuple[str, ...], stage: str
    ) -> PolicyView:
        routes = (self.reference, *self.candidates)
        zero = {c: 0.0 for c in self.candidates}
        return PolicyView(
            routes=routes,
            live=live,
            lower={self.reference: 1.0, **zero},
            upper={self.reference: 1.0, **{c: 1.0 for c in self.candidates}},
            cost={r: self.expected_cost(state, r) for r in routes},
            weights=tuple(1.0 if r == self.reference else 0.0 for r in routes),
            effective_epsilon=0.0,
            budget_left=self.epsilon * self.batch_size,
            to_drop=to_drop,
            bound=1.0,
            explore=False,
            stage=stage,
        )

    def _widen(self, view: PolicyView) -> PolicyView:
        """A certification-stage view over every candidate (those not chosen: weight 0, and the
        interval that claims nothing, [0, 1]: printed as [0, 0] it read as a certified
        disagreement beside their screening's 44 agreements in 45)."""
        routes = (self.reference, *self.candidates)
        weight = dict(zip(view.routes, view.weights, strict=True))
        return replace(
            view,
            routes=routes,
            weights=tuple(weight.get(r, 0.0) for r in routes),
            lower={r: view.lower.get(r, 0.0) for r in routes},
            upper={r: view.upper.get(r, 1.0) for r in routes},
            cost={r: view.cost.get(r, 0.0) for r in routes},
            stage="certifying",
        )

    # -- the budget, delegated to the certification plan -------------------------------------

    def _bounds(self, state: TaskState) -> tuple[dict[str, float], dict[str, float], list[str]]:
        stage = self._stage(state)
        lower = {self.reference: 1.0, **{c: 0.0 for c in self.candidates}}
        upper = {self.reference: 1.0, **{c: 1.0 for c in self.candidates}}
        if stage.plan is None:
            return lower, upper, []
        sub_lower, sub_upper, live = stage.plan._bounds(stage.state)
        return {**lower, **sub_lower}, {**upper, **sub_upper}, live

    def batch_charges(
        self, state: State, lower: Mapping[str, float], route: str | None = None
    ) -> dict[str, float]:
        stage = self._stage(TaskState.of(state))
        charges = {c: 0.0 for c in self.candidates}
        if stage.plan is not None:
            charges.update(stage.plan.batch_charges(stage.state, lower, route))
        return charges

    def _fits_budget(
        self,
        state: State,
        lower: Mapping[str, float],
        route: str | None,
        *,
        saturated: str | None = None,
    ) -> bool:
        stage = self._stage(TaskState.of(state))
        plan = stage.plan
        if plan is None:
            # No certified candidate: only items already counted (none) fit.
            return route is None or route == self.reference
        if route is not None and route not in plan.candidates and route != self.reference:
            return False
        return plan._fits_budget(stage.state, lower, route, saturated=saturated)

    def _steer(self, view: PolicyView, state: TaskState, route: str) -> str:
        stage = self._stage(state)
        if stage.plan is None:
            return self.reference
        return stage.plan._steer(view, stage.state, route)


@dataclass(frozen=True, slots=True)
class _Stage:
    """Where a screened batch is (:meth:`ScreenedBatchPolicy._stage`)."""

    #: "screening", "waiting" (screening over, its last outcomes still out) or "certifying".
    name: str
    #: Certifying: the plan (``None`` if no candidate is worth certifying) and its state.
    plan: BatchPlanPolicy | None = None
    state: TaskState | None = None


def _screening_evidence(state: TaskState, c: str) -> Evidence:
    """``c``'s probe counters over the screening stage: all of its probes less those of the
    certification stage."""
    whole, cert = state.evidence_of(c), state.certified_by(c)
    return Evidence(
        compared=whole.compared - cert.compared,
        agreed=whole.agreed - cert.agreed,
        open=max(whole.open - cert.open, 0.0),
        dropped=whole.dropped,
    )


def _screen_mean(state: TaskState, model: str) -> float | None:
    """Mean cost of one call of ``model`` on screening probes (``None`` if none is known)."""
    n = state.screen_calls.get(model, 0.0)
    return state.screen_cost.get(model, 0.0) / n if n > 0 else None


class _CertificationPlan(BatchPlanPolicy):
    """The certification stage: the batch plan over the rest of the batch, the leader also
    certified by its planned looks once their probes are all in."""

    def __init__(
        self,
        *,
        looks: Mapping[str, LookPlan],
        screened: Mapping[str, tuple[int, int]] | None = None,
        free: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        #: A candidate screening did not choose, taking only items charged one each (no bound,
        #: no probes): the cheapest, for the budget that no certificate is needed to spend.
        self.free = free
        if free is not None:
            # It spends no delta (its bound is never read): the certified candidates keep
            # their shares, as if it were not there.
            certified = [c for c in self.candidates if c != free]
            weights = kwargs.get("delta_weights")
            self.alphas = split_delta(self.delta, certified, weights) if certified else {}

        #: Per candidate with looks: their sizes, pass marks and level, fixed from screening
        #: alone.
        self.looks = dict(looks)
        #: Per candidate, (agreements, compared) in screening, weighed in the predictions.
        self.screened = dict(screened or {})

    def _alpha(self, state: TaskState, c: str) -> float:
        # The free candidate's bound is computed by the base class and then replaced (see
        # _bounds): any level in (0, 1) does, none of delta is spent on it.
        return 0.5 if c == self.free else super()._alpha(state, c)

    def _bound_width(self, state: TaskState, c: str, cap: float) -> tuple[float, float]:
        # Never probed, so never extrapolated; the look-ahead only reads its cap.
        return (1.0, 1.0) if c == self.free else super()._bound_width(state, c, cap)

    def _seen(self, state: TaskState, c: str) -> tuple[int, int]:
        """The certification counters and, weighed by :data:`SCREEN_WEIGHT`, screening's:
        whether probing on pays is a prediction, free to read any data seen so far. On its
        certification probes alone a leader that screening saw agree 52 times in 52 was
        given up after 5 differing answers in its first 48 probes (an arc_challenge order
        that then cost more than the reference alone). The bounds never read screening's."""
        s, n = super()._seen(state, c)
        s0, n0 = self.screened.get(c, (0, 0))
        return s + round(SCREEN_WEIGHT * s0), n + round(SCREEN_WEIGHT * n0)

    def _pending_looks(self, state: TaskState) -> tuple[str, ...]:
        capped = {c: self._look_cap(state, c) for c in self.looks}
        return pending_looks(self.looks, state, capped)

    def _look_cap(self, state: TaskState, c: str) -> float | None:
        return look_cap(self.looks.get(c), state, c)

    def _cap(self, state: State, lower: Mapping[str, float], c: str) -> float:
        state = TaskState.of(state)
        if c == self.free:  # every item it is sent may differ
            return max(self.batch_size - state.evidence_of(c).sampled, 0.0)
        cap = super()._cap(state, lower, c)
        look = self._look_cap(state, c)
        return cap if look is None else min(cap, look)

    def _bounds(self, state: TaskState) -> tuple[dict[str, float], dict[str, float], list[str]]:
        lower, upper, live = super()._bounds(state)
        if self.free is not None:
            # No bound and never probed: its items are charged in full.
            lower[self.free], upper[self.free] = 0.0, 1.0
            live = [c for c in live if c != self.free]
        for c in self.looks:
            look = self._look_cap(state, c)
            if look is not None:
                # As a share of the items unprobed now, so that the plan's G_c = (1 - L_c) x
                # unprobed (BatchPlanPolicy._cap) is the look's bound itself.
                unprobed = max(self.batch_size - state.evidence_of(c).sampled, 1.0)
                lower[c] = max(lower[c], 1.0 - look / unprobed)
        return lower, upper, live

    def view(self, state: State) -> PolicyView:
        """The plan's view, its probes tagged as the leader's look while the look wants more.
        The plan itself decides when to stop probing: a look it does not reach is given up
        (its share of delta unspent), never waited for."""
        state = TaskState.of(state)
        view = super().view(state)
        apart = self._told_apart(state, view.live)
        if apart:
            view = replace(
                view,
                live=tuple(c for c in view.live if c not in apart),
                to_drop=tuple(dict.fromkeys((*view.to_drop, *apart))),
            )
        pending = self._pending_looks(state)
        if not pending or not view.live:
            return view
        return replace(view, look=tuple(c for c in pending if c in view.live))

    def _told_apart(self, state: TaskState, live: Sequence[str]) -> tuple[str, ...]:
        """Contenders beside the leader that its certification probes have told apart from it
        (:func:`contenders` on what the plan's predictions read): they stop being probed.

        Screening keeps a candidate whose high end may beat the leader's low end; on arc_challenge
        at ε = 0.10 that kept claude-instant (0.84) beside Yi-34B (0.91) after 119 screening
        probes, and the plan, valuing it at its upper bound, called it on every one of 370-450
        certification probes (6 % of those batches' spend). Which candidates a probe calls may
        follow anything seen so far; a dropped candidate's share of delta is left unspent."""
        others = [
            c
            for c in live
            if c not in self.looks
            and c != self.free
            and state.evidence_of(c).compared >= MIN_PROBES_BEFORE_DROP
        ]
        if not others:
            return ()
        seen = {c: self._seen(state, c) for c in (*self.looks, *others) if c in live}
        found = prospects(
            {c: Evidence(compared=n, agreed=s) for c, (s, n) in seen.items()},
            {c: self.expected_cost(state, c) for c in seen},
            self.expected_cost(state, self.reference),
            budget=self._budget,
            rest=int(max(self.batch_size - state.requests, 1.0)),
            alpha=self.delta * LEAD_SHARE * LOOK_SHARE,
        )
        kept = contenders(found)
        return tuple(c for c in others if c in found and c not in kept)
