"""``smart replay``: run the real engine over logged model outputs, in many random orders.

Each order is one simulated batch deployment: items arrive in a shuffled order, every model call
is answered from the log (with the logged cost, or tokens x price), and the engine decides probes
and routes exactly as it would live. The realized share of answers that differ from the
reference's, under the task's comparator, is then checked against epsilon.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReplayFormatError
from ..stats.fixed_look import look_size
from ..stats.mix import mix_cost, solve_mix
from ..stores import MemoryStore
from ..task.answer import Answer
from ..task.comparators import Comparator, parse_comparator
from ..task.config import ModelSpec, SmartConfig
from ..task.usage import Usage

__all__ = [
    "ReplayItem",
    "ReplayOrder",
    "ReplayReport",
    "certified_oracle_savings",
    "load_replay",
    "oracle_savings",
    "replay",
]


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """One logged request and every model's logged answer to it."""

    id: str
    input: Any
    outputs: dict[str, Answer]
    label: Any = None


def _answer(model: str, raw: Any, where: str) -> Answer:
    if not isinstance(raw, dict) or "text" not in raw:
        raise ReplayFormatError(f"{where}: outputs[{model!r}] must be an object with a 'text' key")
    cost = raw.get("cost")
    if cost is not None and (not isinstance(cost, int | float) or cost < 0):
        raise ReplayFormatError(f"{where}: outputs[{model!r}].cost must be a number >= 0")
    usage = Usage(int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0))
    return Answer(text=raw["text"], model=model, usage=usage, cost=cost, value=raw.get("value"))


def load_replay(path: str | Path) -> list[ReplayItem]:
    """Parse a replay file; errors name the line number and what is wrong."""
    items = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReplayFormatError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ReplayFormatError(f"{where}: each line must be a JSON object")
            outputs = obj.get("outputs")
            if not isinstance(outputs, dict) or not outputs:
                raise ReplayFormatError(
                    f"{where}: missing 'outputs' (an object mapping model name to its answer)"
                )
            items.append(
                ReplayItem(
                    id=str(obj.get("id", lineno)),
                    input=obj.get("input"),
                    outputs={m: _answer(m, raw, where) for m, raw in outputs.items()},
                    label=obj.get("label"),
                )
            )
    if not items:
        raise ReplayFormatError(f"{path}: no items")
    return items


@dataclass(frozen=True)
class ReplayOrder:
    """One simulated deployment (one random order of the items)."""

    seed: int
    cost: float
    reference_cost: float
    savings: float
    disagreement: float
    exceeded: bool
    probes: int
    routes: dict[str, int]


@dataclass(frozen=True)
class ReplayReport:
    """All orders and their aggregate, as printed by ``smart replay``."""

    file: str
    reference: str
    candidates: list[str]
    comparator: str
    epsilon: float
    delta: float
    method: str
    items: int
    cost: float  # median over orders
    reference_cost: float
    savings: float  # median over orders
    disagreement: float  # mean realized share of differing answers
    max_disagreement: float
    violation_rate: float  # share of orders whose realized share exceeded epsilon
    probes: float  # median
    #: Savings of the cheapest mix of the models with their true agreement in this file known in
    #: advance (no profiling): what any router could at best save here with plain mixing.
    oracle_savings: float = float("nan")
    #: The best one route could save with its true agreement known but still certified on
    #: probes, one look at the whole of delta (:func:`certified_oracle_savings`): what
    #: certifying a batch of this size costs, whichever router certifies it.
    certified_oracle_savings: float = float("nan")
    #: Cascades replayed (``"auto"`` or a list), else None; then the cheapest mix over models
    #: *and* cascades with their true agreement known, and the same file replayed with plain
    #: mixing (models only, same orders) beside it.
    cascades: Any = None
    oracle_savings_cascades: float = float("nan")
    plain_savings: float = float("nan")
    plain_violation_rate: float = float("nan")
    plain_disagreement: float = float("nan")
    routes: dict[str, float] = field(default_factory=dict)  # mean share of items per route
    orders: list[ReplayOrder] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_models(items: Sequence[ReplayItem], reference: str, candidates: Sequence[str]) -> None:
    for lineno, item in enumerate(items, start=1):
        if reference not in item.outputs:
            raise ReplayFormatError(
                f"item {lineno} (id {item.id!r}) has no output for the reference {reference!r}; "
                f"models there: {sorted(item.outputs)}"
            )
    known = {m for item in items for m in item.outputs}
    unknown = [c for c in candidates if c not in known]
    if unknown:
        raise ReplayFormatError(
            f"candidates {unknown} never appear in the file; models there: {sorted(known)}"
        )


def _spec(model: str, items: Sequence[ReplayItem], prices: dict[str, Any]) -> ModelSpec:
    # Logged costs make prices irrelevant; name a zero price so unknown models need none.
    if model not in prices and all(
        it.outputs[model].cost is not None for it in items if model in it.outputs
    ):
        return ModelSpec(name=model, input_price=0.0, output_price=0.0)
    return ModelSpec(name=model)


async def _run_order(
    items: Sequence[ReplayItem], config: SmartConfig, comparator: Comparator, seed: int
) -> ReplayOrder:
    from ..engine.router import SmartRouter

    order = list(items)
    random.Random(seed).shuffle(order)
    ref = config.reference.name
    ids = _request_ids(items)

    def endpoint(model: str):
        async def call(item: ReplayItem) -> Answer:
            logged = item.outputs.get(model)
            if logged is None:
                raise LookupError(f"no logged output of {model} for item {item.id}")
            return Answer(logged.text, logged.value, model, logged.usage, logged.cost)

        return call

    endpoints = {m: endpoint(m) for m in config.model_names()}
    # Learned cascades: the order's first items train their scorers (answered by the reference,
    # the learned steps' models called beside it), and the batch certified is the rest.
    training, order, config = _training_stage(order, config, comparator, ids)
    router = SmartRouter(config, endpoints, store=MemoryStore(), seed=seed, wait_for_probes=True)
    differing = 0
    routes: Counter[str] = Counter()
    ref_cost = 0.0
    train_cost = sum(router.cost_of(a) for a in training)
    trained = len(items) - len(order)
    if trained:
        routes[ref] += trained
    with router.shuffled_batch():  # the order was drawn above, blind to the items
        for item in order:
            routed = await router.arun(item, request_id=ids[id(item)])
            routes[routed.route] += 1
            ref_cost += router.cost_of(item.outputs[ref])
            if routed.route != ref and not comparator(routed.answer, item.outputs[ref]):
                differing += 1
    ledger = router.ledger()
    router.close()
    ref_cost += sum(router.cost_of(a) for a in training if a.model == ref)
    spent = ledger.spent + train_cost
    share = differing / len(items)
    return ReplayOrder(
        seed=seed,
        cost=spent,
        reference_cost=ref_cost,
        savings=ref_cost / spent if spent > 0 else float("inf"),
        disagreement=share,
        exceeded=share > config.epsilon,
        probes=ledger.probes + trained,
        routes=dict(routes),
    )


def _request_ids(items: Sequence[ReplayItem]) -> dict[int, str]:
    """A request id per item (by object identity): its own id, made unique by its line's index
    when the file repeats ids. A learned scorer knows its training probes by these ids."""
    unique = len({it.id for it in items}) == len(items)
    return {id(it): it.id if unique else f"{it.id}#{i}" for i, it in enumerate(items)}


def _training_stage(
    order: list[ReplayItem], config: SmartConfig, comparator: Comparator, ids: dict[int, str]
) -> tuple[list[Answer], list[ReplayItem], SmartConfig]:
    """For a config with learned cascades: the calls the training stage made (the reference's
    and the learned steps' models' logged answers on the order's first items), the rest of the
    order, and the config of the batch over the rest with those cascades frozen."""
    from ..engine.learned_training import (
        TrainingProbe,
        freeze_cascades,
        has_untrained,
        training_models,
        training_size,
    )

    cascades = config.cascade_list()
    if not has_untrained(cascades):
        return [], order, config
    n = training_size(cascades)
    if n >= len(order):
        raise ReplayFormatError(
            f"learned cascades train on the first {n} items, but the file has {len(order)}; "
            "give a smaller train (scorer='learned:train=N')"
        )
    ref = config.reference.name
    models = (ref, *training_models(cascades))
    probes, calls = [], []
    for item in order[:n]:
        answers = {m: item.outputs[m] for m in models if m in item.outputs}
        calls.extend(answers.values())
        probes.append(TrainingProbe(ids[id(item)], item, answers))
    frozen = freeze_cascades(cascades, probes, ref, comparator)
    rest = order[n:]
    return calls, rest, config.replace(cascades=frozen, batch_size=len(rest))


def oracle_savings(
    items: Sequence[ReplayItem], config: SmartConfig, comparator: Comparator
) -> float:
    """Reference-only cost over the cost of the cheapest mix whose agreement, with every route's
    true agreement share in ``items`` known, is at least ``1 - epsilon``: the models', and the
    config's cascades' (each judged from the logged answers as a probe judges it). A route with
    no logged answer to an item where it needs one counts as differing there."""
    return _mix_savings(_true_rates(items, config, comparator), config)


def certified_oracle_savings(
    items: Sequence[ReplayItem], config: SmartConfig, comparator: Comparator
) -> float:
    """What certifying costs even knowing the answer: the best savings of one route whose
    true agreement share in ``items`` is known in advance, but which must still be certified
    as a batch is, on probes paying the reference and the route's models, with one look at
    the smallest sample size at which its expected outcome certifies the rest of the batch
    (the exact hypergeometric bound at the whole of delta, no screening, no second chance).

    :func:`oracle_savings` prices no probe at all; SMART's savings can approach this figure,
    not that one, and the gap between the two is what certifying a batch of this size costs.
    """
    return _certified_savings(_true_rates(items, config, comparator), config, len(items))


_Rates = tuple[list[float], list[float], list[float]]


def _mix_savings(true_rates: _Rates, config: SmartConfig) -> float:
    costs, rates, _ = true_rates
    weights = solve_mix(costs, rates, 1.0 - config.epsilon)
    cost = mix_cost(costs, weights) if weights is not None else costs[0]
    return costs[0] / cost if cost > 0 else float("inf")


def _certified_savings(true_rates: _Rates, config: SmartConfig, n_items: int) -> float:
    costs, rates, probe_costs = true_rates
    budget = config.epsilon * n_items
    best = costs[0]
    for cost, rate, probe_cost in zip(costs[1:], rates[1:], probe_costs[1:], strict=True):
        n = look_size(rate, n_items, budget, config.delta, most=n_items - 1)
        if n is not None:
            best = min(best, (n * probe_cost + (n_items - n) * cost) / n_items)
    return costs[0] / best if best > 0 else float("inf")


def _true_rates(items: Sequence[ReplayItem], config: SmartConfig, comparator: Comparator) -> _Rates:
    """Per route, reference first: mean cost per item, true agreement share, and mean cost of a
    probe of it alone (the reference's call and its models', each once)."""
    from ..engine.learned_training import has_untrained
    from ..engine.router import SmartRouter
    from ..engine.routes import cost_of_route

    # A learned cascade's oracle would need its scorer fit on the very items it is judged on
    # (in-sample, optimistic): the oracle leaves untrained cascades out.
    if has_untrained(config.cascade_list()):
        kept = [c for c in config.cascade_list() if not has_untrained([c])]
        config = config.replace(cascades=kept or None)
    router = SmartRouter(config, store=MemoryStore())
    ref = config.reference.name
    costs, rates, probe_costs = [], [], []
    for route in router.routes:
        cost = agreeing = probing = 0.0
        models = dict.fromkeys((ref, *route.models))
        for it in items:
            probing += sum(router.cost_of(it.outputs[m]) for m in models if m in it.outputs)
            answer = route.probe_answer(it.outputs)
            if not isinstance(answer, Answer):
                continue
            cost += cost_of_route(answer, router.cost_of)
            if route.name == ref or comparator(answer, it.outputs[ref]):
                agreeing += 1
        costs.append(cost / len(items))
        rates.append(agreeing / len(items))
        probe_costs.append(probing / len(items))
    router.close()
    return costs, rates, probe_costs


def _run_order_sync(
    items: Sequence[ReplayItem], config: SmartConfig, comparator: Comparator, seed: int
) -> ReplayOrder:
    return asyncio.run(_run_order(items, config, comparator, seed))


def replay(
    path: str | Path,
    *,
    reference: str,
    candidates: Sequence[str] | None = None,
    epsilon: float,
    delta: float = 0.05,
    comparator: str | Comparator = "exact",
    orders: int = 10,
    seed: int = 0,
    method: str = "anytime",
    prices: dict[str, Any] | None = None,
    items: Sequence[ReplayItem] | None = None,
    workers: int | None = None,
    progress: Callable[[int], object] | None = None,
    cascades: Any = None,
    screen: int | None = None,
) -> ReplayReport:
    """Replay ``path`` in ``orders`` random orders as batch deployments and aggregate.

    Orders run in ``workers`` processes (default: all cores); each order is seeded by its index,
    so results do not depend on the number of workers. With ``cascades`` (``"auto"`` or a list,
    as ``SmartConfig(cascades=...)``) the cascades are routes too, built over the logged
    answers, and the same orders are also replayed with plain mixing, for comparison.
    """
    items = list(items) if items is not None else load_replay(path)
    if candidates is None:
        seen: dict[str, None] = {}
        for it in items:
            seen.update(dict.fromkeys(it.outputs))
        candidates = [m for m in seen if m != reference]
    _check_models(items, reference, candidates)
    prices = dict(prices or {})
    config = SmartConfig(
        task="replay",
        epsilon=epsilon,
        delta=delta,
        reference=_spec(reference, items, prices),
        candidates=[_spec(c, items, prices) for c in candidates],
        comparator=comparator,
        method=method,
        batch_size=len(items),
        prices=prices,
        cascades=cascades,
        screen=screen,
    )
    comp = parse_comparator(comparator)
    workers = min(workers or os.cpu_count() or 1, orders)
    results = _run_orders(items, config, comp, orders, seed, workers, progress)
    # The file's true rates, read once for both oracles of the config's routes.
    true_rates = _true_rates(items, config, comp)
    plain: dict[str, float] = {}
    if config.cascade_list():
        plain_config = config.replace(cascades=None)
        base = _run_orders(items, plain_config, comp, orders, seed, workers, progress)
        plain = {
            "plain_savings": statistics.median(r.savings for r in base),
            "plain_violation_rate": sum(r.exceeded for r in base) / len(base),
            "plain_disagreement": statistics.fmean(r.disagreement for r in base),
            "oracle_savings": oracle_savings(items, plain_config, comp),
            "oracle_savings_cascades": _mix_savings(true_rates, config),
        }
    n = len(items)
    route_share: Counter[str] = Counter()
    for r in results:
        for route, count in r.routes.items():
            route_share[route] += count / n / len(results)
    return ReplayReport(
        file=str(path),
        reference=reference,
        candidates=list(candidates),
        comparator=comp.name,
        epsilon=epsilon,
        delta=delta,
        method=method,
        items=n,
        cost=statistics.median(r.cost for r in results),
        reference_cost=statistics.median(r.reference_cost for r in results),
        savings=statistics.median(r.savings for r in results),
        disagreement=statistics.fmean(r.disagreement for r in results),
        max_disagreement=max(r.disagreement for r in results),
        violation_rate=sum(r.exceeded for r in results) / len(results),
        probes=statistics.median(r.probes for r in results),
        oracle_savings=plain.pop("oracle_savings", None) or _mix_savings(true_rates, config),
        certified_oracle_savings=_certified_savings(true_rates, config, n),
        routes=dict(sorted(route_share.items(), key=lambda kv: -kv[1])),
        orders=results,
        cascades=cascades
        if isinstance(cascades, str | None)
        else [c.name for c in config.cascade_list()],
        **plain,
    )


def _run_orders(
    items: Sequence[ReplayItem],
    config: SmartConfig,
    comp: Comparator,
    orders: int,
    seed: int,
    workers: int,
    progress: Callable[[int], object] | None,
) -> list[ReplayOrder]:
    results = []
    if workers == 1:
        for k in range(orders):
            results.append(_run_order_sync(items, config, comp, seed + k))
            if progress:
                progress(1)
        return results
    # Orders are independent deployments: spread them over processes.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_run_order_sync, items, config, comp, seed + k) for k in range(orders)
        ]
        for future in as_completed(futures):
            results.append(future.result())
            if progress:
                progress(1)
    results.sort(key=lambda r: r.seed)
    return results
