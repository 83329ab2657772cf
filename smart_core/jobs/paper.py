"""``smart bench paper``: the SMART paper's own simulation, run through SMART's real policy.

Per dataset, every item's agreement with gpt-4 is an independent Bernoulli draw with the
published rate (as in the paper). Each run is one batch job of the dataset's size: the real
:class:`~smart_core.MixPolicy` decides probe or route for every item, probes draw agreements for
the live candidates, and the realized share of answers differing from gpt-4's is counted.
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

from ..policy import keys as K
from ..policy import policy_class, probe_outcome
from ..stats.mix import mix_cost, solve_mix
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
    dataset: str, epsilon: float, *, delta: float = 0.05, seed: int = 0, method: str = "anytime"
) -> PaperRun:
    """Run one batch of ``dataset`` through the policy; returns cost and realized disagreement."""
    n_items, models = DATASETS[dataset]
    costs = _item_costs(dataset)
    rates = {m: v[0] for m, v in models.items()}
    candidates = [m for m in models if m != REFERENCE]
    policy = policy_class(batch_size=n_items, method=method)(
        task=f"paper/{dataset}",
        reference=REFERENCE,
        candidates=candidates,
        epsilon=epsilon,
        delta=delta,
        prior_costs=costs,
        method=method,
        batch_size=n_items,
    )
    rng = random.Random(seed)
    counters: dict[str, float] = defaultdict(float)
    spent = 0.0
    differing = 0
    view = None
    probes_at_view = 0.0
    routed_since_view = 0
    for t in range(n_items):
        # The view (bounds + mix) is refreshed as evidence grows; a stale view only carries
        # older, still valid, bounds, and the batch budget is always checked on fresh counters.
        probes = counters[K.PROBES]
        if (
            view is None
            or probes - probes_at_view >= max(1.0, 0.01 * probes)
            or routed_since_view >= max(1, (n_items - t) // 400)
        ):
            view = policy.view(counters)
            probes_at_view, routed_since_view = probes, 0
        decision = policy.decide_from(view, counters, rng)
        for key, value in decision.increments.items():
            counters[key] += value
        if decision.increments.keys() & {K.dropped(c) for c in candidates}:
            view = None
        route = decision.route
        spent += costs[route]
        counters[K.calls(route)] += 1
        counters[K.call_cost(route)] += costs[route]
        if route == REFERENCE:
            for c in decision.probe_models:
                spent += costs[c]
                counters[K.calls(c)] += 1
                counters[K.call_cost(c)] += costs[c]
                for key, value in probe_outcome(decision, c, rng.random() < rates[c]).items():
                    counters[key] += value
        else:
            routed_since_view += 1
            if rng.random() >= rates[route]:
                differing += 1
    return PaperRun(
        dataset=dataset,
        epsilon=epsilon,
        seed=seed,
        cost=spent,
        reference_cost=costs[REFERENCE] * n_items,
        disagreement=differing / n_items,
        probes=int(counters[K.PROBES]),
    )


def bench_paper(
    *,
    datasets: Sequence[str] = ("imdb", "sms_spam", "ag_news"),
    epsilons: Sequence[float] = EPSILONS,
    seeds: int = 20,
    delta: float = 0.05,
    method: str = "anytime",
    workers: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> list[PaperRow]:
    """Every (dataset, epsilon) point over ``seeds`` seeds, aggregated.

    Runs are independent, so they are spread over ``workers`` processes (default: all cores).
    """
    jobs = [(ds, eps, seed) for ds in datasets for eps in epsilons for seed in range(seeds)]
    runs: dict[tuple[str, float], list[PaperRun]] = defaultdict(list)
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for ds, eps, seed in jobs:
            runs[ds, eps].append(simulate_paper(ds, eps, delta=delta, seed=seed, method=method))
            if progress:
                progress(1)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(simulate_paper, ds, eps, delta=delta, seed=seed, method=method)
                for ds, eps, seed in jobs
            ]
            for future in as_completed(futures):
                run = future.result()
                runs[run.dataset, run.epsilon].append(run)
                if progress:
                    progress(1)
    rows = []
    for ds in datasets:
        for eps in epsilons:
            points = runs[ds, eps]
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
                )
            )
    return rows


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))
