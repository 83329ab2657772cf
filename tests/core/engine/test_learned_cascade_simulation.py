"""A learned cascade scorer through the real engine (``smart replay`` on generated logs).

The cheap model differs from the reference on the hard requests, and a hard request says so in
its text (noisily): a logistic regression on hashed n-grams of the request can learn it. Fit on
the first probes of each order and frozen, the learned cascade is certified on the rest of the
batch, and the realized share of differing answers stays within epsilon in at least 1 - delta of
the orders. A scorer fit on the very probes that would then count for it is refused.
"""

from __future__ import annotations

import random
import statistics

import pytest

from smart_core import Answer
from smart_core.engine.learned_training import TrainingProbe, freeze_cascades
from smart_core.jobs.replay import ReplayItem, replay
from smart_core.task.cascades import Cascade, CascadeStep
from smart_core.task.comparators import parse_comparator
from smart_core.task.learned_scorer import TrainingOverlapError, UntrainedScorer

REF, MINI = "gpt-4o", "gpt-4o-mini"
EPSILON, DELTA = 0.05, 0.05
CHOICE = parse_comparator("choice:A,B")


def _items(n: int, seed: int) -> list[ReplayItem]:
    """MINI is wrong on the 30 % hard items at 2 % of the reference's cost; a hard item's text
    says 'tricky' 97 % of the time (an easy one 5 % of the time)."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        right = rng.choice("AB")
        hard = rng.random() < 0.3
        said = ("B" if right == "A" else "A") if hard else right
        tricky = rng.random() < (0.97 if hard else 0.05)
        text = f"ticket {i}: {'a tricky' if tricky else 'a plain'} request #{rng.randrange(999)}"
        outputs = {
            REF: Answer(right, model=REF, cost=1.0),
            MINI: Answer(said, model=MINI, cost=0.02),
        }
        items.append(ReplayItem(str(i), text, outputs))
    return items


LEARNED = [Cascade([CascadeStep(MINI, UntrainedScorer(200), threshold=0.8)])]


def _run(items, cascades, orders: int, workers: int = 1):
    return replay(
        "simulated",
        items=items,
        reference=REF,
        epsilon=EPSILON,
        delta=DELTA,
        comparator="choice:A,B",
        orders=orders,
        workers=workers,
        cascades=cascades,
    )


N = 1200  # 200 to train on, a batch of 1,000 to certify


def _check(orders: int, workers: int) -> None:
    report = _run(_items(N, 1), LEARNED, orders, workers)
    # Realized share of differing answers within epsilon in at least 1 - delta of the orders.
    exceeded = sum(o.disagreement > EPSILON for o in report.orders)
    assert exceeded <= DELTA * orders
    assert report.plain_violation_rate <= DELTA + 2 * (DELTA / orders) ** 0.5
    # The frozen learned cascade, certified on the rest of each batch, carries much of it in
    # many orders (its route name carries the fingerprint of that order's own fit). Not in
    # every order: a cascade whose first probe escalates looks as dear as the reference and
    # the policy stops probing it (docs/cascades.md, "Known limits").
    carried = [
        sum(n for r, n in o.routes.items() if r.startswith(f"cascade:{MINI}[learned@"))
        for o in report.orders
    ]
    assert sum(c > 0.3 * N for c in carried) >= orders / 4
    assert statistics.fmean(o.savings for o in report.orders) > 1.3 * report.plain_savings


def test_a_learned_scorer_is_certified_on_fresh_probes_quick():
    _check(orders=8, workers=2)


@pytest.mark.slow
def test_a_learned_scorer_is_certified_on_fresh_probes_over_300_orders():
    _check(orders=300, workers=2)


def test_a_scorer_trained_and_certified_on_the_same_probes_is_refused():
    items = _items(600, 2)
    # Fit on the first 200 items of the file, then replay the whole file with it: the probes
    # of those items would count for the route of a scorer that has seen them.
    probes = [TrainingProbe(it.id, it, dict(it.outputs)) for it in items[:200]]
    frozen = freeze_cascades(LEARNED, probes, REF, CHOICE)
    with pytest.raises(TrainingOverlapError, match="was in this scorer's training set"):
        _run(items, frozen, orders=1)
    # The same scorer replayed only on the items it never saw is counted as any route.
    report = _run(items[200:], frozen, orders=1)
    assert report.orders[0].disagreement <= EPSILON
