"""SettledPrefix: the policy also sees the probes settled in decision order, up to a gap."""

from __future__ import annotations

import random

from smart_core.policy import TaskState, probe_failure, probe_outcome
from smart_core.policy import keys as K
from smart_core.policy.settled_prefix import SettledPrefix

A, B = "cand-a", "cand-b"


def _decision(*models: str) -> dict[str, float]:
    inc = {K.REQUESTS: 1.0, K.PROBES: 1.0}
    for m in models:
        inc[K.probes_open(m)] = 1.0
    return inc


class _Run:
    """A store (plain counters) and a prefix kept in step, as the batch run keeps them."""

    def __init__(self) -> None:
        self.store: dict[str, float] = {}
        self.prefix = SettledPrefix()

    def write(self, inc) -> None:
        for k, v in inc.items():
            self.store[k] = self.store.get(k, 0.0) + v

    def decide(self, *models: str) -> int | None:
        inc = _decision(*models)
        self.write(inc)
        return self.prefix.decided(inc)

    def settle(self, seq: int, outcomes: dict[str, bool | None]) -> None:
        inc: dict[str, float] = {}
        for m, agreed in outcomes.items():
            more = probe_failure(None, m) if agreed is None else probe_outcome(None, m, agreed)
            for k, v in more.items():
                inc[k] = inc.get(k, 0.0) + v
        self.write(inc)
        self.prefix.settled(seq, inc)

    def seen(self, model: str) -> tuple[float, float]:
        """(probes, agreements) of the settled prefix handed to the policy."""
        state = self.prefix.state(self.store)
        assert state.prefix is not None
        # The store's own counters pass through untouched: the prefix is a field of its own.
        assert state == TaskState.from_counters(self.store, prefix=state.prefix)
        agreements, probes = state.prefix[model]
        return probes, agreements


def test_an_outcome_settled_after_a_gap_is_held_back_until_the_gap_closes():
    run = _Run()
    first, second, third = (run.decide(A, B) for _ in range(3))
    run.settle(second, {A: True, B: False})
    run.settle(third, {A: True, B: True})
    # The first probe is still open: nothing after it counts, and nothing is counted as open.
    assert run.seen(A) == (0.0, 0.0)
    assert run.store[K.probes_of(A)] == 2.0  # the store has everything
    run.settle(first, {A: False, B: True})
    assert run.seen(A) == (3.0, 2.0)
    assert run.seen(B) == (3.0, 2.0)
    assert run.prefix.open == 0


def test_a_failed_call_settles_the_probe_without_counting_it():
    run = _Run()
    first, second = run.decide(A), run.decide(A)
    run.settle(second, {A: True})
    run.settle(first, {A: None})
    assert run.seen(A) == (1.0, 1.0)


def test_an_abandoned_probe_stays_open_and_counts_as_differing_once_in_the_prefix():
    run = _Run()
    first, second = run.decide(A), run.decide(A)
    run.settle(second, {A: True})
    assert run.seen(A) == (0.0, 0.0)
    run.prefix.abandoned(first)
    assert run.seen(A) == (2.0, 1.0)  # the open one is in the prefix, as differing


def test_decisions_that_are_not_probes_are_not_tracked():
    prefix = SettledPrefix()
    assert prefix.decided({K.REQUESTS: 1.0, K.routed(A): 1.0}) is None
    assert prefix.open == 0


def test_what_the_policy_sees_is_always_the_longest_settled_prefix():
    """Random settlement orders: the counts handed over equal those of the longest prefix of
    decided probes that are all settled, at every step."""
    rng = random.Random(7)
    for _ in range(50):
        run = _Run()
        truth: list[bool] = []
        seqs = []
        for _ in range(40):
            seqs.append(run.decide(A))
            truth.append(rng.random() < 0.8)
        pending = list(range(40))
        rng.shuffle(pending)
        done: set[int] = set()
        for i in pending:
            run.settle(seqs[i], {A: truth[i]})
            done.add(i)
            k = next((j for j in range(40) if j not in done), 40)
            assert run.seen(A) == (float(k), float(sum(truth[:k])))
