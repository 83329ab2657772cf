"""``smart bench paper``: the SMART paper's own simulation, run through SMART's real policy.

Per dataset, every item's agreement with gpt-4 is an independent Bernoulli draw with the
published rate (as in the paper). Each run is one batch job of the dataset's size: the real
policy decides probe or route for every item and the items go through the same serving flow
as live requests (:mod:`smart_core.engine.flow`), with answers drawn instead of called: probes
draw agreements for the live candidates, and the realized share of answers differing from
gpt-4's is counted.
"""

from __future__ import annotations

import math
import os
import random
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

from ..engine.drivers import run_flow
from ..engine.effects import Begin, Call, Effect, Finish, LookUp, Settle, StartProbes
from ..engine.flow import serve_flow
from ..engine.routes import RouteTable
from ..engine.ticket import Routed, Ticket
from ..policy import BatchPlanPolicy, Decision, Policy, batch_policy, policy_class, probe_outcome
from ..policy import keys as K
from ..stats.mix import mix_cost, solve_mix
from ..task.answer import Answer
from .paper_data import DATASETS, PRICES_PER_1K, PUBLISHED_SAVINGS, REFERENCE

__all__ = ["PaperRow", "PaperRun", "bench_paper", "oracle_savings", "simulate_paper"]

EPSILONS = (0.02, 0.05, 0.10, 0.15, 0.20)


@dataclass(frozen=True)
class PaperRun:
    """One simulated batch: what it cost and how often it differed from gpt-4."""

    dataset: str
    epsilon: float
    seed: int
    cost: float
    reference_cost: float
    disagreement: float
    probes: int

    @property
    def savings(self) -> float:
        return self.reference_cost / self.cost


@dataclass(frozen=True)
class PaperRow:
    """One (dataset, epsilon) point aggregated over seeds."""

    dataset: str
    epsilon: float
    seeds: int
    cost: float
    savings: float
    violation_rate: float
    probes: float
    oracle_savings: float
    published_savings: float | None
    max_disagreement: float
    #: The published method simulated with its confidence corrected for repeated looks
    #: (:mod:`smart_core.jobs.paper_published`): median savings, share of seeds over epsilon,
    #: and the one-sided per-look level its stopping rule used. None when not simulated.
    corrected_published_savings: float | None = None
    corrected_published_violation_rate: float | None = None
    corrected_published_level: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _item_costs(dataset: str) -> dict[str, float]:
    _, models = DATASETS[dataset]
    out = {}
    for m, (_, prompt, completion) in models.items():
        pin, pout = PRICES_PER_1K[m]
        out[m] = (prompt * pin + completion * pout) / 1000.0
    return out


def oracle_savings(dataset: str, epsilon: float) -> float:
    """Savings of the LP with the true agreement rates and no profiling at all."""
    _, models = DATASETS[dataset]
    costs = _item_costs(dataset)
    names = list(models)
    w = solve_mix([costs[m] for m in names], [models[m][0] for m in names], 1.0 - epsilon)
    assert w is not None
    return costs[REFERENCE] / mix_cost([costs[m] for m in names], w)


def simulate_paper(
    dataset: str,
    epsilon: float,
    *,
    delta: float = 0.05,
    seed: int = 0,
    method: str = "anytime",
    screen: int | None = None,
) -> PaperRun:
    """Run one batch of ``dataset`` through the policy; returns cost and realized disagreement."""
    n_items, models = DATASETS[dataset]
    costs = _item_costs(dataset)
    rates = {m: v[0] for m, v in models.items()}
    candidates = [m for m in models if m != REFERENCE]
    args = dict(
        task=f"paper/{dataset}",
        reference=REFERENCE,
        candidates=candidates,
        epsilon=epsilon,
        delta=delta,
        prior_costs=costs,
        method=method,
        batch_size=n_items,
    )
    if policy_class(batch_size=n_items, method=method) is BatchPlanPolicy:
        policy = batch_policy(**args, screen=screen)
    else:
        policy = policy_class(batch_size=n_items, method=method)(**args)
    steps = _PaperSteps(policy, costs, rates, n_items, random.Random(seed))
    routes = RouteTable.of_models(REFERENCE, candidates)
    for _ in range(n_items):
        run_flow(serve_flow(routes, policy.task), steps)
    counters, spent, differing = steps.counters, steps.spent, steps.differing
    return PaperRun(
        dataset=dataset,
        epsilon=epsilon,
        seed=seed,
        cost=spent,
        reference_cost=costs[REFERENCE] * n_items,
        disagreement=differing / n_items,
        probes=int(counters[K.PROBES]),
    )


class _PaperSteps:
    """The serving flow's effects for one simulated batch, as the paper simulates them: the real
    policy decides, every answer is drawn with its model's published agreement rate, and only the
    counters the policy reads are kept (no store, no certificate beyond the decision's)."""

    def __init__(
        self,
        policy: Policy,
        costs: dict[str, float],
        rates: dict[str, float],
        n_items: int,
        rng: random.Random,
    ) -> None:
        self.policy = policy
        self.costs = costs
        self.rates = rates
        self.n_items = n_items
        self.rng = rng
        self.counters: dict[str, float] = defaultdict(float)
        self.spent = 0.0
        self.differing = 0
        self.t = 0
        self._view: Any = None
        self._probes_at_view = 0.0
        self._routed_since_view = 0
        self._dropped = {K.dropped(c) for c in policy.candidates} | {
            K.cert_dropped(c) for c in policy.candidates
        }

    def __call__(self, effect: Effect) -> Any:
        if isinstance(effect, Begin):
            return self._begin()
        if isinstance(effect, LookUp):  # no answer cache: every item is answered by a model
            return None
        if isinstance(effect, StartProbes):
            ticket = effect.ticket
            return _Probed(ticket.probe_models, ticket.decision) if ticket.probe_models else None
        if isinstance(effect, Call):
            return self._call(effect.model)
        if isinstance(effect, Finish):
            return self._finish(effect.ticket, effect.answer)
        if isinstance(effect, Settle):
            return self._settle(effect.probes)
        raise TypeError(f"the paper simulation never fails a call, got {effect!r}")

    def _begin(self) -> Ticket:
        # The view (bounds + mix) is refreshed as evidence grows; a stale view only carries
        # older, still valid, bounds, and the batch budget is always checked on fresh counters.
        counters = self.counters
        probes = counters[K.PROBES]
        if (
            self._view is None
            or self._view.stage == "screening"  # short, and its end changes everything
            or probes - self._probes_at_view >= max(1.0, 0.01 * probes)
            or self._routed_since_view >= max(1, (self.n_items - self.t) // 400)
        ):
            self._view = self.policy.view(counters)
            self._probes_at_view, self._routed_since_view = probes, 0
        decision = self.policy.decide_from(self._view, counters, self.rng)
        for key, value in decision.increments.items():
            counters[key] += value
        if decision.increments.keys() & self._dropped:
            self._view = None
        self.t += 1
        return Ticket(str(self.t), decision, decision.route)

    def _call(self, model: str) -> Answer:
        cost = self.costs[model]
        self.spent += cost
        self.counters[K.calls(model)] += 1
        self.counters[K.call_cost(model)] += cost
        return Answer(model=model, cost=cost)

    def _finish(self, ticket: Ticket, answer: Answer) -> Routed:
        if ticket.route != REFERENCE:
            self._routed_since_view += 1
            if self.rng.random() >= self.rates[ticket.route]:
                self.differing += 1
        return Routed(
            answer, ticket.route, ticket.probe, answer.cost or 0.0, ticket.certificate, ""
        )

    def _settle(self, probes: _Probed) -> None:
        screening = probes.decision.stage == "screening"
        if screening:  # the reference answered this probe
            self.counters[K.screen_calls(REFERENCE)] += 1
            self.counters[K.screen_cost(REFERENCE)] += self.costs[REFERENCE]
        for c in probes.routes:
            self._call(c)
            if screening:
                self.counters[K.screen_calls(c)] += 1
                self.counters[K.screen_cost(c)] += self.costs[c]
            agreed = self.rng.random() < self.rates[c]
            for key, value in probe_outcome(probes.decision, c, agreed).items():
                self.counters[key] += value


class _Probed:
    """The routes a simulated probe measures (nothing runs, so there is nothing to cancel)."""

    def __init__(self, routes: tuple[str, ...], decision: Decision) -> None:
        self.routes = routes
        self.decision = decision

    def cancel(self) -> None:
        return None


def bench_paper(
    *,
    datasets: Sequence[str] = ("imdb", "sms_spam", "ag_news"),
    epsilons: Sequence[float] = EPSILONS,
    seeds: int = 20,
    delta: float = 0.05,
    method: str = "anytime",
    workers: int | None = None,
    progress: Callable[[int], object] | None = None,
    corrected_published: bool = True,
) -> list[PaperRow]:
    """Every (dataset, epsilon) point over ``seeds`` seeds, aggregated.

    With ``corrected_published`` the published method is simulated beside SMART on the same
    seeds, at the confidence 1 - ``delta`` corrected for its repeated looks (``progress`` then
    counts its runs too). Runs are independent, so they are spread over ``workers`` processes
    (default: all cores).
    """
    from .paper_published import PublishedLevels, published_levels, simulate_published

    jobs = [(ds, eps, seed) for ds in datasets for eps in epsilons for seed in range(seeds)]
    runs: dict[tuple[str, float], list[PaperRun]] = defaultdict(list)
    corrected_runs: dict[tuple[str, float], list[PaperRun]] = defaultdict(list)
    levels: dict[str, PublishedLevels] = {}
    workers = workers or os.cpu_count() or 1

    if workers == 1:
        for ds, eps, seed in jobs:
            runs[ds, eps].append(simulate_paper(ds, eps, delta=delta, seed=seed, method=method))
            if progress:
                progress(1)
        if corrected_published:
            for ds in datasets:
                levels[ds] = published_levels(1.0 - delta, horizon=DATASETS[ds][0], corrected=True)
            for ds, eps, seed in jobs:
                corrected_runs[ds, eps].append(simulate_published(ds, eps, levels[ds], seed=seed))
                if progress:
                    progress(1)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            # The corrected levels take seconds per dataset: computed first, beside SMART's runs.
            level_futures = (
                {
                    ds: pool.submit(
                        published_levels, 1.0 - delta, horizon=DATASETS[ds][0], corrected=True
                    )
                    for ds in datasets
                }
                if corrected_published
                else {}
            )
            futures = [
                pool.submit(simulate_paper, ds, eps, delta=delta, seed=seed, method=method)
                for ds, eps, seed in jobs
            ]
            levels = {ds: f.result() for ds, f in level_futures.items()}
            published_futures = [
                pool.submit(simulate_published, ds, eps, levels[ds], seed=seed)
                for ds, eps, seed in (jobs if corrected_published else [])
            ]
            for future in as_completed(futures):
                run = future.result()
                runs[run.dataset, run.epsilon].append(run)
                if progress:
                    progress(1)
            for future in published_futures:
                run = future.result()
                corrected_runs[run.dataset, run.epsilon].append(run)
                if progress:
                    progress(1)
    rows = []
    for ds in datasets:
        for eps in epsilons:
            points = runs[ds, eps]
            corrected = corrected_runs.get((ds, eps))
            rows.append(
                PaperRow(
                    dataset=ds,
                    epsilon=eps,
                    seeds=seeds,
                    cost=statistics.median(r.cost for r in points),
                    savings=statistics.median(r.savings for r in points),
                    violation_rate=sum(r.disagreement > eps for r in points) / len(points),
                    probes=statistics.median(r.probes for r in points),
                    oracle_savings=oracle_savings(ds, eps),
                    published_savings=PUBLISHED_SAVINGS.get(ds, {}).get(eps),
                    max_disagreement=max(r.disagreement for r in points),
                    corrected_published_savings=(
                        statistics.median(r.savings for r in corrected) if corrected else None
                    ),
                    corrected_published_violation_rate=(
                        sum(r.disagreement > eps for r in corrected) / len(corrected)
                        if corrected
                        else None
                    ),
                    corrected_published_level=(levels[ds].stopping_level if corrected else None),
                )
            )
    return rows


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))
