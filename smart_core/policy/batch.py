"""Batch mode: probe, then commit the rest of the batch to the cheapest plan the budget allows.

This is docs/guarantee.md, "Why it holds", step 5 (batch mode, on the finite-population bound).
With probability ``1 - delta`` the *realized* share of the batch's answers that differ from the
reference's is at most ``epsilon``. Reference answers already returned agree by definition.
Candidate ``c`` is charged ``min(R_c, G_c)`` (items routed to it, bound on differing answers
among its unprobed items), and an item is routed only while the charges fit ``epsilon * N``.
The batch probes until committing the rest is cheaper than probing on (see
:mod:`smart_core.policy.commitment`), a choice made by looking ahead at what more probes would
buy. The per-item (Clopper-Pearson) batch mode is
:class:`~smart_core.policy.batch_budget.BatchBudgetPolicy`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..stats.confidence import (
    ConfidenceSequence,
    FinitePopulationSequence,
    make_confidence_sequence,
)
from .base import MIN_PROBES_BEFORE_DROP, PolicyBase, PolicyView, State, readings
from .commitment import CandidateState, Commitment, cheapest_commitment
from .lookahead import LookaheadGrid
from .state import TaskState

__all__ = ["BatchPlanPolicy"]

#: The first look-ahead (in probes) and the factor between look-aheads (see :func:`_lookaheads`).
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


@dataclass(frozen=True, slots=True)
class _BatchLook:
    """One look at a batch: where every look-ahead starts from.

    The look-aheads compare many ways of going on from the same state, so the state travels
    as one value rather than as the same five arguments to every step.
    """

    state: TaskState
    #: What the budget knows about each candidate (in ``BatchPlanPolicy.candidates`` order).
    states: tuple[CandidateState, ...]
    #: Cost of one answer per route.
    cost: Mapping[str, float]
    #: Items of the batch not yet decided.
    remaining: float
    #: The cheapest commitment today's bounds allow.
    now: Commitment
    #: The look-aheads' arithmetic for this look (constants worked out once).
    grid: LookaheadGrid
    #: Continuations already valued in this look, by what they probe and in which scenarios.
    valued: dict[tuple, float]


class BatchPlanPolicy(PolicyBase):
    """Decides probe, or an item of the committed plan, for a batch of ``batch_size`` items
    from its state alone (stateless between calls)."""

    mode = "batch"
    #: Part of delta kept for the chance fluctuation of the answers: none, the finite-population
    #: bound covers the batch's own answers (compare BatchBudgetPolicy).
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
        bound: ConfidenceSequence | None = None,
    ) -> None:
        bound = bound or make_confidence_sequence(method, epsilon, batch_size)
        if not isinstance(bound, FinitePopulationSequence):
            raise ValueError(
                f"the batch plan needs the finite-population bound, not {bound.name!r}: "
                "a per-item bound runs under BatchBudgetPolicy"
            )
        super().__init__(
            task=task,
            reference=reference,
            candidates=candidates,
            epsilon=epsilon,
            delta=delta,
            prior_costs=prior_costs,
            bound=bound,
            delta_weights=delta_weights,
            route_models=route_models,
        )
        self.batch_size = batch_size
        # The finite-population bound covers the batch's own answers: no realization margin.
        self._budget = epsilon * batch_size

    @classmethod
    def from_config(cls, config, *, task: str | None = None) -> BatchPlanPolicy:
        """Build from a :class:`~smart_core.SmartConfig` (prices give the costs before usage).
        Audits are not drawn in batch mode (``audit_rate`` is ignored): committed items are
        covered by the plan's charges, and the batch has no "recent" traffic to watch."""
        return cls(**cls.config_arguments(config, task=task), batch_size=config.batch_size)

    # -- the plan ----------------------------------------------------------------------------

    def view(self, state: State) -> PolicyView:
        """Probe, or commit the rest of the batch.

        The remaining items are either probed (the reference answers, the live candidates are
        compared) or served by the cheapest commitment the budget allows now (see
        :mod:`smart_core.policy.commitment`). Probing goes on while probing longer and committing
        then is predicted, at today's agreement rates, to cost less than committing now.
        """
        state = TaskState.of(state)
        ref = self.reference
        lower, upper, live = self._bounds(state)
        cost = {r: self.expected_cost(state, r) for r in (ref, *self.candidates)}
        states = tuple(
            CandidateState(c, cost[c], state.routed.get(c, 0.0), self._cap(state, lower, c))
            for c in self.candidates
        )
        remaining = max(self.batch_size - state.requests, 0.0)
        # Committing ends profiling: the reference items of a commitment are plain calls.
        now = cheapest_commitment(remaining, self._budget, ref, cost[ref], states)

        econ_key = (
            "commit",
            tuple(round(math.log1p(state.evidence_of(c).compared) * 100) for c in live),
            tuple(round(math.log1p(st.routed) * 20) for st in states),
            tuple(live),
            round(math.log1p(remaining) * 100),
        )
        econ = self._econ_cache.get(econ_key)
        if econ is None:
            look = self._look(state, states, cost, remaining, now)
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

    # -- the budget --------------------------------------------------------------------------

    def batch_charges(
        self, state: State, lower: Mapping[str, float], route: str | None = None
    ) -> dict[str, float]:
        """Per candidate ``c``, ``min(R_c, G_c)``: the most of the items routed to it that may
        differ from the reference's, counting one more item for ``route`` if given. Their sum is
        what :meth:`_fits_budget` keeps within ``epsilon * N``, so it is the count a batch's
        certificate states."""
        state = TaskState.of(state)
        charges = {}
        for c in self.candidates:
            routed = state.routed.get(c, 0.0) + (1.0 if c == route else 0.0)
            charges[c] = min(routed, self._cap(state, lower, c)) if routed else 0.0
        return charges

    def _cap(self, state: State, lower: Mapping[str, float], c: str) -> float:
        """``G_c``: the most differing answers among ``c``'s unprobed items, from its bound."""
        state = TaskState.of(state)
        sizes = readings(state, c)
        if len(sizes) == 1:
            unprobed = max(self.batch_size - sizes[0][1], 0.0)
            return (1.0 - lower[c]) * unprobed
        # Each reading bounds its own unprobed items (the prefix's include the probes held back).
        return min(
            (1.0 - self.bound.lower(s, n, self.alphas[c])) * max(self.batch_size - n, 0.0)
            for s, n in sizes
        )

    def _fits_budget(
        self,
        state: State,
        lower: Mapping[str, float],
        route: str | None,
        *,
        saturated: str | None = None,
    ) -> bool:
        """May one more item go to ``route`` without risking the batch's promise?
        (``None``: do the items already counted fit?)

        The items sent to a candidate ``c`` differ at most ``min(R_c, G_c)`` times, ``R_c``
        being how many were sent and ``G_c`` the bound on differing answers among all of ``c``'s
        unprobed items (the routed ones are among them). The sum over candidates must stay
        within ``epsilon * N``; checked before every routed item on the counters as they are,
        this holds at the end whatever happens after the last one. ``saturated`` names a
        candidate to charge its whole bound ``G_c`` now (it will get more items than that).
        """
        state = TaskState.of(state)
        used = 0.0
        for c in self.candidates:
            routed = state.routed.get(c, 0.0) + (1.0 if c == route else 0.0)
            if c == saturated:
                routed = math.inf
            if routed:
                used += min(routed, self._cap(state, lower, c))
        return used <= self._budget + 1e-9

    def _steer(self, view: PolicyView, state: TaskState, route: str) -> str:
        """A free item may not take budget the committed candidate's bound needs: the random
        draws could otherwise overshoot the plan and bar the bulk of the batch."""
        if (
            view.committed
            and route not in (self.reference, view.committed)
            and not self._fits_budget(state, view.lower, route, saturated=view.committed)
        ):
            return view.committed
        return route

    # -- probe or commit ---------------------------------------------------------------------

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
        ref, state, now = self.reference, look.state, look.now
        if not live:
            return (), False
        losers = []
        # Each candidate is valued alone against what the batch could do without any more
        # probes, so two candidates that could each carry the batch both stay until one does.
        for c in live:
            n = state.evidence_of(c).compared
            if n >= MIN_PROBES_BEFORE_DROP:
                rate = self._rate_estimate(state, c, hopeful=True)
            elif state.calls.get(c) and state.calls.get(ref):
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
        if len(still) > 1 and state.probes >= MIN_PROBES_BEFORE_DROP:
            options = []
            for c, without in self._costs_without_each(look, still).items():
                # c is valued at its upper bound's rate: a few unlucky probes must not get the
                # better of two substitutes dropped.
                hopeful = {c: self._rate_estimate(state, c, hopeful=True)}
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
            for w, rates in self._rate_scenarios(look.state, probed, spread)
        ]
        return self._best_continuation(look, probed, scenarios)

    def _look(
        self,
        state: TaskState,
        states: tuple[CandidateState, ...],
        cost: Mapping[str, float],
        remaining: float,
        now: Commitment,
    ) -> _BatchLook:
        """Where every look-ahead of this decision starts from."""
        grid = LookaheadGrid(
            states=states,
            compared=[state.evidence_of(st.name).compared for st in states],
            widths=[self._bound_width(state, st.name, st.cap) for st in states],
            extras=_lookaheads(remaining),
            remaining=remaining,
            budget=self._budget,
            reference_cost=cost[self.reference],
            batch_size=self.batch_size,
        )
        return _BatchLook(state, states, cost, remaining, now, grid, {})

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
        key = (tuple(live), tuple((w, tuple(r.items())) for w, r in scenarios))
        hit = look.valued.get(key)
        if hit is None:
            hit = look.valued[key] = self._value_continuation(look, live, scenarios)
        return hit

    def _value_continuation(
        self,
        look: _BatchLook,
        live: Sequence[str],
        scenarios: Sequence[tuple[float, Mapping[str, float]]],
    ) -> float:
        ref, state, cost, grid = self.reference, look.state, look.cost, look.grid
        # Predictions are optimistic, and what a probe adds to a plain reference call (the
        # candidates' calls) is lost for good if it does not pay: it is counted with a margin.
        probe_cost = cost[ref] + (1.0 + _COMMIT_MARGIN) * self.probe_calls_cost(state, live, cost)
        extras = grid.extras
        # The table's cells as columns: caps[i, j, k] is candidate i's cap after extras[j] more
        # probes in scenario k; a scenario below today's estimate must not undo today's
        # evidence (the predicted cap is never above today's).
        caps = np.empty((len(look.states), len(extras), len(scenarios)))
        caps[:] = grid.caps[:, None, None]
        for i, st in enumerate(look.states):
            if st.name in live:
                for k, (_, rates) in enumerate(scenarios):
                    caps[i, :, k] = grid.future_caps(i, rates[st.name])
        left = np.repeat(grid.left, len(scenarios))
        after = grid.commitment_costs(caps.reshape(len(look.states), -1), left)
        # table[j][k]: cost of probing extras[j] more, then committing, in scenario k.
        cells = np.array(extras, dtype=float)[:, None] * probe_cost + after.reshape(
            len(extras), len(scenarios)
        )
        table = cells.tolist()
        weights = [w for w, _ in scenarios]
        best = min(
            (sum(w * x for w, x in zip(weights, row, strict=True)) for row in table),
            default=math.inf,
        )
        # Probing is not a fixed plan: once the probes have grown enough to tell the scenarios
        # apart, the batch commits when the scenario it is in says so (the option to stop early
        # in a poor scenario is what makes a long look-ahead worth starting).
        probes = min((state.evidence_of(c).compared for c in live), default=0.0)
        learned = _LEARNING_GROWTH * max(probes, MIN_PROBES_BEFORE_DROP)
        start = next((j for j, extra in enumerate(extras) if extra >= learned), None)
        if start is not None:
            adaptive = sum(w * min(row[k] for row in table[start:]) for k, w in enumerate(weights))
            best = min(best, adaptive)
        return best

    def _rate_scenarios(
        self, state: TaskState, live: Sequence[str], spread: Sequence[str]
    ) -> list[tuple[float, dict[str, float]]]:
        """Where the live candidates' agreement rates may lie: the estimates, and those of
        ``spread`` all ``sqrt(3)`` standard errors higher or lower (``_GAUSS_HERMITE``). Moving
        them together keeps three scenarios however many candidates there are; what matters for
        the decision is the chance that a candidate is better than it looks, which they keep."""
        out = []
        for weight, z in _GAUSS_HERMITE:
            rates = {}
            for c in live:
                p = self._rate_estimate(state, c)
                sd = math.sqrt(p * (1.0 - p) / (self._seen(state, c)[1] + 1.0))
                rates[c] = min(1.0, max(0.0, p + (z * sd if c in spread else 0.0)))
            out.append((weight, rates))
        return out

    def _rate_estimate(self, state: TaskState, c: str, *, hopeful: bool = False) -> float:
        """Today's agreement rate of ``c`` (or, ``hopeful``, the top of its interval)."""
        s, n = self._seen(state, c)
        if hopeful:
            return self.bound.upper(s, n, self.alphas[c])
        return (s + 0.5) / (n + 1.0)

    def _seen(self, state: TaskState, c: str) -> tuple[int, int]:
        """(agreements, compared answers) the plan's predictions read for ``c``: its counters
        here; a subclass may add what it saw before (predictions only, never a bound)."""
        evidence = state.evidence_of(c)
        return int(evidence.agreed), int(evidence.compared)

    def _bound_width(self, state: TaskState, c: str, cap: float) -> tuple[float, float]:
        """(probes, squared width in standard errors) of ``c``'s bound today, to extrapolate it.

        Predictions only steer probing, so instead of the exact bound at every future count they
        use today's bound expressed in standard errors, widened by ``ln(n'/n)`` as a mixture
        bound's is: a thousand times cheaper, and close enough to choose when to stop.
        """
        evidence = state.evidence_of(c)
        n = evidence.compared
        if n < MIN_PROBES_BEFORE_DROP:
            return max(n, 1.0), 2.0 * math.log(1.0 / self.alphas[c]) + 2.0
        p = (evidence.agreed + 0.5) / (n + 1.0)
        lower = 1.0 - cap / max(self.batch_size - n, 1.0)
        z = max(p - lower, 0.0) / math.sqrt(p * (1.0 - p) / n)
        return n, z * z

    def _predicted_cap(self, rate: float, probes: float, width: tuple[float, float]) -> float:
        """``G_c`` after ``probes`` probes agreeing at ``rate`` (see :meth:`_bound_width`)."""
        rest = self.batch_size - probes
        if rest <= 0:
            return 0.0
        n0, z2 = width
        p = min(rate, 1.0 - 0.5 / (probes + 1.0))
        z = math.sqrt(z2 + math.log(max(probes, n0) / n0))
        lower = min(1.0, max(0.0, rate - z * math.sqrt(p * (1.0 - p) / probes)))
        return (1.0 - lower) * rest


def _lookaheads(remaining: float) -> list[float]:
    """Probe counts to look ahead to: geometric from the next few probes up, and from the end
    of the batch down (on a small target the best plan probes most of the batch)."""
    steps = []
    d = float(_FIRST_LOOKAHEAD)
    while d < remaining:
        steps.append(d)
        d = math.ceil(d * _LOOKAHEAD_STEP)
    return sorted({*steps, *(remaining - d for d in steps if remaining - d > d)})
