"""The cheapest way to finish a batch within its budget of differing answers."""

from __future__ import annotations

import itertools
import random

import pytest

from smart_core.policy.commitment import CandidateState, cheapest_commitment

REF = "ref"


def _brute_force(remaining, budget, ref_cost, states):
    """Every split of the remaining items over the routes; the cheapest that keeps
    ``sum_c min(R_c + k_c, G_c) <= budget``."""
    best = None
    names = [s.name for s in states]
    for ks in itertools.product(range(remaining + 1), repeat=len(states)):
        if sum(ks) > remaining:
            continue
        charge = sum(min(s.routed + k, s.cap) for s, k in zip(states, ks, strict=True))
        if charge > budget + 1e-9:
            continue
        cost = sum(s.cost * k for s, k in zip(states, ks, strict=True))
        cost += ref_cost * (remaining - sum(ks))
        if best is None or cost < best[0] - 1e-12:
            best = (cost, dict(zip(names, ks, strict=True)))
    return best


def test_a_candidate_whose_cap_fits_takes_every_item():
    states = [CandidateState("a", 1.0, 0.0, 40.0), CandidateState("b", 2.0, 0.0, 500.0)]
    plan = cheapest_commitment(1000, 50.0, REF, 10.0, states)
    assert plan.saturated == "a"
    # The 10 units of budget the cap leaves buy nothing cheaper than a.
    assert plan.items == {"a": 1000}
    assert plan.cost == pytest.approx(1000.0)


def test_budget_left_by_the_saturated_candidate_buys_free_items_on_a_cheaper_one():
    states = [CandidateState("good", 2.0, 0.0, 40.0), CandidateState("junk", 0.5, 0.0, 900.0)]
    plan = cheapest_commitment(1000, 50.0, REF, 10.0, states)
    assert plan.saturated == "good"
    assert plan.items == {"junk": 10, "good": 990}
    assert plan.cost == pytest.approx(10 * 0.5 + 990 * 2.0)


def test_without_a_saturable_candidate_the_budget_buys_free_items_and_the_rest_is_reference():
    states = [CandidateState("a", 1.0, 5.0, 400.0), CandidateState("b", 0.5, 0.0, 400.0)]
    plan = cheapest_commitment(100, 20.0, REF, 10.0, states)
    assert plan.saturated is None
    # a's 5 routed items already use 5 of the 20: 15 free items go to the cheaper b.
    assert plan.items == {"b": 15, REF: 85}


def test_a_spent_budget_sends_everything_to_the_reference():
    states = [CandidateState("a", 1.0, 30.0, 400.0)]
    plan = cheapest_commitment(100, 30.0, REF, 10.0, states)
    assert plan.items == {REF: 100}
    assert plan.cost == pytest.approx(1000.0)


@pytest.mark.parametrize("seed", range(40))
def test_matches_a_brute_force_search_over_every_split(seed):
    rng = random.Random(seed)
    remaining = rng.randint(1, 7)
    states = [
        CandidateState(
            f"c{i}",
            cost=rng.choice([0.5, 1.0, 2.0, 3.0]),
            routed=float(rng.randint(0, 3)),
            cap=float(rng.randint(0, 12)),
        )
        for i in range(rng.randint(1, 3))
    ]
    budget = float(rng.randint(0, 10))
    if sum(s.charge for s in states) > budget:
        budget = sum(s.charge for s in states)  # a reachable state: never overspent
    cost, _ = _brute_force(remaining, budget, 10.0, states)
    plan = cheapest_commitment(remaining, budget, REF, 10.0, states)
    assert plan.cost == pytest.approx(cost)
    assert sum(plan.items.values()) == pytest.approx(remaining)
    charge = sum(min(s.routed + plan.items.get(s.name, 0), s.cap) for s in states)
    assert charge <= budget + 1e-9
