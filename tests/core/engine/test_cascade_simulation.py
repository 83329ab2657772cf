"""Simulated deployments through the real engine (``smart replay`` on generated logs): a cascade
whose scorer tells easy requests from hard ones beats even the best mix of models known in
advance, at the same epsilon and within delta; a scorer that tells nothing never wins, and the
guarantee holds either way (the cascade is judged on probes, whatever its scorer is worth)."""

from __future__ import annotations

import random
import statistics

import pytest

from smart_core import Answer
from smart_core.jobs.replay import ReplayItem, replay
from smart_core.task.cascades import Cascade, CascadeStep
from smart_core.task.scorers import CallableScorer

REF, MINI = "gpt-4o", "gpt-4o-mini"
EPSILON, DELTA = 0.05, 0.05


def confidence(answer: Answer) -> float:
    return float(answer.value["confidence"])


def _items(n: int, informative: bool, seed: int) -> list[ReplayItem]:
    """MINI differs from the reference on 30 % of the items (the hard ones) at 2 % of its cost;
    its confidence separates hard from easy items when ``informative``, else it is noise."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        right = rng.choice("AB")
        hard = rng.random() < 0.3
        said = ("B" if right == "A" else "A") if hard else right
        if informative:
            conf = rng.uniform(0.0, 0.5) if hard else rng.uniform(0.5, 1.0)
        else:
            conf = rng.random()
        outputs = {
            REF: Answer(right, model=REF, cost=1.0),
            MINI: Answer(said, model=MINI, cost=0.02, value={"confidence": conf}),
        }
        items.append(ReplayItem(str(i), None, outputs))
    return items


def _run(items: list[ReplayItem], cascades, orders: int):
    return replay(
        "simulated",
        items=items,
        reference=REF,
        epsilon=EPSILON,
        delta=DELTA,
        comparator="choice:A,B",
        orders=orders,
        workers=1,
        cascades=cascades,
    )


CASCADE = [Cascade([CascadeStep(MINI, CallableScorer(confidence, "conf"))])]


def _check(orders: int) -> None:
    informed = _run(_items(2000, True, 1), CASCADE, orders)
    noise = _run(_items(2000, False, 2), CASCADE, orders)
    for report in (informed, noise):
        assert report.violation_rate <= DELTA + 2 * (DELTA / orders) ** 0.5
        assert report.plain_violation_rate <= DELTA + 2 * (DELTA / orders) ** 0.5
    # Informative: SMART with the cascade saves more than the best mix of models, with their
    # agreement known in advance and no profiling, could (0.7 agreement: a 1/6 share at most).
    assert informed.savings > 1.5 * informed.oracle_savings
    assert informed.savings > 1.5 * informed.plain_savings
    # Uninformative: the cascade is a coin between MINI and the reference paying for MINI
    # every time, so no mix with it is cheaper; SMART with it saves no more than without.
    assert noise.oracle_savings_cascades == pytest.approx(noise.oracle_savings, rel=0.02)
    assert noise.savings <= noise.plain_savings * 1.02
    routed = statistics.fmean(o.routes.get(CASCADE[0].name, 0) for o in informed.orders)
    assert routed > 0.4 * 2000  # the informative cascade carries much of the batch


def test_an_informative_scorer_wins_and_a_noise_scorer_does_not_quick():
    _check(orders=4)


@pytest.mark.slow
def test_an_informative_scorer_wins_and_a_noise_scorer_does_not_over_many_streams():
    _check(orders=60)
