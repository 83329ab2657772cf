"""The SMART paper's own method, simulated on ``smart bench paper``'s setup, at the paper's
confidence and at a *corrected* one that makes its repeated-look rule valid.

The algorithm follows the paper's public code (github.com/saehanjo/smart-llms, ``processor.py``,
method ``multi-model``, the one its experiments report as SMART):

1. Profiling. Models are ordered by prompt price. Every item goes to gpt-4 and to every
   candidate still *unknown* that is no pricier than the cheapest *satisfied* model (gpt-4 is
   satisfied from the start). Every 10 items each profiled candidate gets a two-sided
   Clopper-Pearson interval at confidence c: upper < 1 - eps makes it *invalid*, lower >= 1 - eps
   *satisfied*. From 100 items on, the unknown candidates are all made invalid when the expected
   cost of profiling k more items (k = 1, 2, 4, ...) and then using what those items would
   certify is no lower than using the cheapest satisfied model for the rest. Profiling stops
   once the cheapest candidate not invalid is satisfied (or all candidates are invalid).
2. Mixing. For the rest of the batch, a linear program picks the cheapest mix of models whose
   lower bounds reach the target left after the profiled items (all answered by gpt-4); each
   candidate's bound is taken at a confidence in {c, c + (1-c)/5, ..., c + 4(1-c)/5} or the
   candidate is left out, with the product of the confidences at least c. The remaining items
   go to the models in consecutive blocks of the mix's proportions.

Re-checking a fixed-sample bound every 10 items is not valid under repeated looks: at c = 0.95
(one-sided 2.5 % per look) the lower bound exceeds the true agreement at some look in 16-33 %
of batches of this setup's sizes (:mod:`smart_core.stats.repeated_looks`). The *corrected*
method replaces each confidence c' used by the rule with the per-look level at which that
probability is at most 1 - c' over the batch's looks, exactly computed; nothing else changes.

Two deviations from the code, both in the pruning's cost estimate only, never in a bound: the
code integrates a binomial tail against a normal density numerically (scipy ``norm.expect``);
here that expectation is the normal approximation of the same predictive probability in closed
form, and a candidate whose sample agreement is 0 or 1 (zero spread) is a point mass instead of
an undefined integral. Unit costs are the code's (tokens a model used divided by the items
profiled so far, which undercounts a model profiled on fewer items). The item draws reproduce the
code's simulator: one uniform stream per model, in the order of the published table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..stats.mix import solve_mix
from ..stats.repeated_looks import clopper_pearson_critical_counts, corrected_clopper_pearson_alpha
from .paper import PaperRun, _item_costs
from .paper_data import DATASETS, PRICES_PER_1K, REFERENCE

__all__ = ["PublishedLevels", "published_levels", "simulate_published"]

LOOK_EVERY = 10
PRUNE_FROM = 100
_UNKNOWN, _INVALID, _SATISFIED = 0, 1, 2


@dataclass(frozen=True)
class PublishedLevels:
    """The one-sided per-look levels the rule's lower and upper bounds use.

    ``levels[j]`` belongs to the paper's confidence ``confidences[j]``; ``confidences[0]`` is the
    stopping rule's (the paper's c), the others are the extra levels the mix may use.
    """

    confidences: tuple[float, ...]
    levels: tuple[float, ...]
    corrected: bool

    @property
    def stopping_level(self) -> float:
        return self.levels[0]


def published_levels(
    confidence: float = 0.95, *, horizon: int | None = None, corrected: bool = False
) -> PublishedLevels:
    """The paper's levels (two-sided interval at c: one-sided (1 - c) / 2 per side), or with
    ``corrected`` the per-look levels whose repeated-look failure over ``horizon`` items is at
    most 1 - c for every c in the list."""
    confs = tuple(float(c) for c in np.linspace(confidence, 1.0, num=5, endpoint=False))
    if not corrected:
        return PublishedLevels(confs, tuple((1.0 - c) / 2.0 for c in confs), False)
    if horizon is None:
        raise ValueError("a corrected level depends on the horizon (the batch size)")
    levels = tuple(
        corrected_clopper_pearson_alpha(round(1.0 - c, 12), horizon, LOOK_EVERY) for c in confs
    )
    return PublishedLevels(confs, levels, True)


def simulate_published(
    dataset: str, epsilon: float, levels: PublishedLevels, *, seed: int = 0
) -> PaperRun:
    """One batch of ``dataset`` through the published method at ``levels``."""
    n_items, models = DATASETS[dataset]
    unit = _item_costs(dataset)
    # The code's simulator: one uniform stream per model in the table's order.
    rng = np.random.default_rng(seed)
    agree = {m: rng.random(n_items) < rate for m, (rate, _, _) in models.items()}
    order = sorted(models, key=lambda m: PRICES_PER_1K[m][0])
    candidates = [m for m in order if m != REFERENCE]
    conform = {m: np.concatenate(([0], np.cumsum(agree[m]))) for m in candidates}
    target = 1.0 - epsilon
    thresholds = _look_thresholds(n_items, target, levels.stopping_level)

    status = {m: _UNKNOWN for m in candidates}
    profiled = dict.fromkeys(order, 0)  # items each model answered while profiling
    cnt = 0
    found = False
    while cnt < n_items and not found:
        batch = _profiled_models(order, status)
        cnt = min(cnt + LOOK_EVERY, n_items)
        for m in (*batch, REFERENCE):
            profiled[m] = cnt
        if cnt % LOOK_EVERY:
            break  # the code checks only at multiples of 10
        look = cnt // LOOK_EVERY - 1
        for m in batch:
            s = int(conform[m][cnt])
            if s <= thresholds.invalid[look]:
                status[m] = _INVALID
            elif s >= thresholds.satisfied[look]:
                status[m] = _SATISFIED
        if cnt >= PRUNE_FROM:
            _prune(order, status, profiled, conform, unit, cnt, n_items, target, levels)
        found = _smallest_model(order, status) is not None

    cost = sum(unit[m] * profiled[m] for m in order)
    agreeing = cnt  # profiled items are answered by gpt-4
    if cnt < n_items:
        weights = _mix(order, profiled, conform, unit, cnt, n_items, target, levels)
        counts = _split_integer(n_items - cnt, weights)
        start = cnt
        for m, count in zip(order, counts, strict=True):
            if count:
                cost += unit[m] * count
                agreeing += int(agree[m][start : start + count].sum()) if m != REFERENCE else count
                start += count
    return PaperRun(
        dataset=dataset,
        epsilon=epsilon,
        seed=seed,
        cost=cost,
        reference_cost=unit[REFERENCE] * n_items,
        disagreement=1.0 - agreeing / n_items,
        probes=cnt,
    )


@dataclass(frozen=True)
class _Thresholds:
    """Per look (10, 20, ...): counts at or above which the lower bound reaches the target, and
    at or below which the upper bound is under it (-1: never)."""

    satisfied: np.ndarray
    invalid: np.ndarray


@lru_cache(maxsize=32)
def _look_thresholds(n_items: int, target: float, level: float) -> _Thresholds:
    looks = list(range(LOOK_EVERY, n_items + 1, LOOK_EVERY))
    ns = np.asarray(looks)
    # lower(S, n) >= target  iff  P(Bin(n, target) >= S) <= level (Clopper-Pearson duality);
    # upper(S, n) < target   iff  P(Bin(n, 1 - target) >= n - S) < level.
    satisfied = clopper_pearson_critical_counts(target, looks, [level])[0]
    invalid = ns - clopper_pearson_critical_counts(1.0 - target, looks, [level])[0]
    return _Thresholds(satisfied, invalid)


def _profiled_models(order: Sequence[str], status: dict[str, int]) -> list[str]:
    """Unknown candidates no pricier than the cheapest satisfied model."""
    out = []
    for m in order:
        if m == REFERENCE or status[m] == _SATISFIED:
            break
        if status[m] == _UNKNOWN:
            out.append(m)
    return out


def _smallest_model(order: Sequence[str], status: dict[str, int]) -> str | None:
    for m in order:
        if m == REFERENCE or status[m] == _SATISFIED:
            return m
        if status[m] == _UNKNOWN:
            return None
    return None


def _prune(order, status, profiled, conform, unit, cnt, n_items, target, levels) -> None:
    """The code's ``prune_models``: give up on every unknown candidate once no amount of
    further profiling is expected to beat the cheapest satisfied model."""
    unknown = _profiled_models(order, status)
    if not unknown or cnt == n_items:
        return
    unit_cost = {m: unit[m] * profiled[m] / cnt for m in order}
    satisfied = next(m for m in order if m == REFERENCE or status[m] == _SATISFIED)
    cost_satisfied = unit_cost[satisfied] * (n_items - cnt)
    ks = []
    k = 1
    while k < n_items - cnt:
        ks.append(k)
        k *= 2
    if not ks:
        return
    ks_arr = np.asarray(ks, dtype=float)
    rest = n_items - cnt - ks_arr
    # Lowest count among the n = cnt + k answers that certifies the target at the stopping level.
    certify = clopper_pearson_critical_counts(
        target, [cnt + k for k in ks], [levels.stopping_level]
    )
    certify = certify[0]
    expected = ks_arr * (unit_cost[REFERENCE] + sum(unit_cost[m] for m in unknown))
    still = np.ones(len(ks))
    for m in unknown:
        s = int(conform[m][cnt])
        needed = np.minimum(np.maximum(certify, s), cnt + ks_arr) - s  # the code's bisection
        prob = _reach_probability(needed, ks_arr, s / cnt, cnt)
        expected = expected + still * prob * rest * unit_cost[m]
        still = still * (1.0 - prob)
    expected = expected + still * rest * unit_cost[satisfied]
    if float(expected.min()) >= cost_satisfied:
        for m in unknown:
            status[m] = _INVALID


def _reach_probability(needed: np.ndarray, k: np.ndarray, rate: float, cnt: int) -> np.ndarray:
    """P(at least ``needed`` agreements among ``k`` more items) when the agreement is normal
    around the sample rate with the sample's standard error: normal approximation of the
    predictive count, with a continuity correction."""
    var = k * rate * (1.0 - rate) * (1.0 + k / cnt)
    out = np.where(needed <= 0, 1.0, np.where(needed > k, 0.0, np.nan))
    open_ = np.isnan(out)
    if var.min() <= 0.0:  # sample rate 0 or 1: the agreement is a point mass
        out[open_] = 1.0 if rate >= 1.0 else 0.0
        return out
    z = (k * rate - needed + 0.5) / np.sqrt(var)
    out[open_] = 0.5 * (1.0 + np.vectorize(math.erf)(z[open_] / math.sqrt(2.0)))
    return out


def _mix(order, profiled, conform, unit, cnt, n_items, target, levels) -> list[float]:
    """The code's ``find_ratios``: the cheapest LP mix over every admissible choice of bounds."""
    target_rest = (target - cnt / n_items) * n_items / (n_items - cnt)
    costs = [unit[m] * profiled[m] / cnt for m in order]
    options: list[list[tuple[float, float]]] = []
    for m in order:
        if m == REFERENCE:
            options.append([(1.0, 1.0)])
            continue
        n, s = profiled[m], int(conform[m][profiled[m]])
        bounds = [
            (conf, _cp_lower(s, n, level))
            for conf, level in zip(levels.confidences, levels.levels, strict=True)
        ]
        options.append([*bounds, (1.0, 0.0)])
    best: tuple[float, list[float]] | None = None
    for combo in _product(options):
        confs, accs = zip(*combo, strict=True)
        if float(np.prod(confs)) < levels.confidences[0]:
            continue
        weights = solve_mix(costs, accs, target_rest)
        if weights is None:
            continue
        cost = sum(c * w for c, w in zip(costs, weights, strict=True))
        if best is None or cost < best[0]:
            best = (cost, weights)
    assert best is not None  # gpt-4 alone always meets a target <= 1
    return best[1]


def _product(options: list[list[tuple[float, float]]]):
    if not options:
        yield []
        return
    for head in options[0]:
        for tail in _product(options[1:]):
            yield [head, *tail]


@lru_cache(maxsize=100_000)
def _cp_lower(s: int, n: int, level: float) -> float:
    """The Clopper-Pearson lower bound (the code's ``binom_ci`` lower end at one-sided level)."""
    from ..stats.confidence import ClopperPearsonBound

    if n == 0 or s == 0:
        return 0.0
    return ClopperPearsonBound().lower(s, n, level)


def _split_integer(count: int, ratios: Sequence[float]) -> list[int]:
    """The code's ``split_integer_into_parts``: ``count`` items in the given proportions, the
    largest share first, each rounded from what is left."""
    ratios_arr = np.clip(np.asarray(ratios, dtype=float), 0.0, None)
    idx = np.argsort(-ratios_arr, kind="stable")
    sorted_r = ratios_arr[idx]
    tails = np.cumsum(sorted_r[::-1])[::-1]
    fracs = np.divide(sorted_r, tails, out=np.ones_like(sorted_r), where=tails != 0)
    remainder = count
    parts = np.zeros(len(fracs), dtype=int)
    for i, frac in enumerate(fracs):
        parts[i] = round(remainder * frac)
        remainder -= parts[i]
    out = np.zeros(len(fracs), dtype=int)
    out[idx] = parts
    return [int(x) for x in out]
