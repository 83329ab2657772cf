"""The look-ahead's array arithmetic gives the scalar code's numbers exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest

from smart_core.policy.batch import BatchPlanPolicy, _lookaheads
from smart_core.policy.commitment import CandidateState, cheapest_commitment
from smart_core.policy.lookahead import LookaheadGrid

REF = "ref"


def _random_states(rng: random.Random, k: int) -> list[CandidateState]:
    costs = [rng.choice([0.5, 1.0, 1.0, 2.0, 3.0, 9.5, 10.0, 12.0]) for _ in range(k)]
    return [
        CandidateState(
            f"c{i}",
            costs[i],
            float(rng.choice([0, 0, 1, 3, 40, 250])),
            rng.choice([0.0, rng.uniform(0, 80), rng.uniform(0, 5), 30.0]),
        )
        for i in range(k)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_commitment_costs_equal_cheapest_commitment_exactly(seed):
    rng = random.Random(seed)
    k = rng.randint(1, 9)
    states = _random_states(rng, k)
    remaining = float(rng.choice([5, 120, 1000, 40_000]))
    budget = rng.choice([0.5, 3.0, 20.0, 50.0, 400.0])
    extras = _lookaheads(remaining)
    grid = LookaheadGrid(
        states=states,
        compared=[100.0] * k,
        widths=[(100.0, 4.0)] * k,
        extras=extras,
        remaining=remaining,
        budget=budget,
        reference_cost=10.0,
        batch_size=int(2 * remaining) + 200,
    )
    columns = [[rng.choice([s.cap, rng.uniform(0, 60), 0.0]) for s in states] for _ in extras]
    if not columns:
        return
    caps = np.array(columns, dtype=float).T
    got = grid.commitment_costs(caps, grid.left).tolist()
    for j, extra in enumerate(extras):
        future = [
            CandidateState(s.name, s.cost, s.routed, columns[j][i]) for i, s in enumerate(states)
        ]
        want = cheapest_commitment(remaining - extra, budget, REF, 10.0, future).cost
        assert got[j] == want


@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9, 0.97, 0.999, 1.0])
def test_future_caps_equal_predicted_cap_exactly(rate):
    policy = BatchPlanPolicy(
        task="t",
        reference=REF,
        candidates=["a", "b"],
        epsilon=0.05,
        delta=0.05,
        prior_costs={REF: 10.0, "a": 1.0, "b": 2.0},
        batch_size=5_000,
    )
    remaining = 4_000.0
    extras = _lookaheads(remaining)
    widths = [(120.0, 6.5), (3.0, 11.0)]
    states = [CandidateState("a", 1.0, 0.0, 90.0), CandidateState("b", 2.0, 5.0, 40.0)]
    grid = LookaheadGrid(
        states=states,
        compared=[120.0, 3.0],
        widths=widths,
        extras=extras,
        remaining=remaining,
        budget=250.0,
        reference_cost=10.0,
        batch_size=5_000,
    )
    for i, st in enumerate(states):
        got = grid.future_caps(i, rate).tolist()
        want = [
            min(st.cap, policy._predicted_cap(rate, grid._compared[i] + e, widths[i]))
            for e in extras
        ]
        assert got == want
