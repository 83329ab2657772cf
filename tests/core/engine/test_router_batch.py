"""SmartRouter.arun_batch / run_batch: batch mode draws the serving order itself."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from smart_core import Answer, SmartConfig, SmartRouter, Usage

REF = "gpt-4o"
MINI = "gpt-4o-mini"


def batch_config(n: int, **kw) -> SmartConfig:
    settings = {
        "task": "t",
        "epsilon": 0.05,
        "delta": 0.05,
        "reference": REF,
        "candidates": [MINI],
        "batch_size": n,
    }
    settings.update(kw)
    return SmartConfig(**settings)


def endpoints(differing: set[int], seen: list[int] | None = None):
    async def reference(x):
        if seen is not None:
            seen.append(x)
        return Answer(text=f"r{x}", usage=Usage(1000, 100))

    async def candidate(x):
        return Answer(text="wrong" if x in differing else f"r{x}", usage=Usage(1000, 100))

    return {REF: reference, MINI: candidate}


def sorted_batch(rng: random.Random, n: int) -> set[int]:
    """Items sorted so that the hard ones come last: the candidate's differing answers, 5 % to
    8 % of the batch (around the target), nearly all in the last quarter."""
    differing = rng.randint(n // 20, n * 8 // 100)
    early = rng.sample(range(n * 3 // 4), 5)
    late = rng.sample(range(n * 3 // 4, n), differing - 5)
    return set(early) | set(late)


def test_results_come_back_in_input_order_but_items_are_decided_in_a_drawn_order():
    seen: list[int] = []
    router = SmartRouter(batch_config(200), endpoints(set(), seen), seed=3)
    results = router.run_batch(list(range(200)), concurrency=4)
    assert [r.answer.text for r in results] == [f"r{i}" for i in range(200)]
    assert seen != sorted(seen), "the reference was called in input order"
    assert router.store.read("t")["requests"] == 200.0


async def test_a_batch_must_be_served_whole_and_once():
    router = SmartRouter(batch_config(10), endpoints(set()), seed=0)
    with pytest.raises(ValueError, match=r"batch_size is 10.*whole batch"):
        await router.arun_batch(list(range(9)))
    await router.arun_batch(list(range(10)))
    with pytest.raises(ValueError, match="already served"):
        await router.arun_batch(list(range(10)))


async def test_reference_errors_are_raised_or_returned_in_place():
    async def reference(x):
        if x == 3:
            raise ConnectionError("reference down")
        return Answer(text=f"r{x}", usage=Usage(10, 1))

    eps = {**endpoints(set()), REF: reference}
    router = SmartRouter(batch_config(8), eps, seed=0)
    results = await router.arun_batch(list(range(8)), return_exceptions=True)
    assert isinstance(results[3], ConnectionError)
    assert all(r.answer.text == f"r{i}" for i, r in enumerate(results) if i != 3)
    again = SmartRouter(batch_config(8, task="u"), eps, seed=0)
    with pytest.raises(ConnectionError):
        await again.arun_batch(list(range(8)))


async def test_one_at_a_time_batch_serving_warns_once_and_arun_batch_does_not(caplog):
    caplog.set_level(logging.WARNING, logger="smart_core")
    router = SmartRouter(batch_config(50), endpoints(set()), seed=0, wait_for_probes=True)
    for i in range(3):
        await router.arun(i)
    order = [r.getMessage() for r in caplog.records if "order you pass them" in r.getMessage()]
    assert len(order) == 1 and "arun_batch" in order[0] and "batch_size=50" in order[0]
    caplog.clear()
    other = SmartRouter(batch_config(50), endpoints(set()), seed=0)
    await other.arun_batch(list(range(50)))
    assert not [r for r in caplog.records if "order you pass them" in r.getMessage()]


@pytest.mark.slow
def test_sorted_batches_keep_the_guarantee_through_run_batch():
    """The audit's scenario: a batch whose last quarter holds nearly all of the candidate's
    differing answers (data sorted by date, source or length), 5-8 % of the batch in all.
    Served in the caller's order it violated in 11.5 % of runs (100 % in this harder version);
    run_batch draws the order itself, so the realized share of differing answers exceeds
    epsilon in at most delta of runs. 200 runs tell 5 % from 10 %: the test allows 8 %."""
    runs, n, violations = 200, 1000, 0
    routed_total = 0
    for seed in range(runs):
        differing = sorted_batch(random.Random(seed), n)
        router = SmartRouter(batch_config(n), endpoints(differing), seed=seed)
        results = asyncio.run(router.arun_batch(list(range(n)), concurrency=4))
        served_differing = sum(
            1 for i, r in enumerate(results) if r.route != REF and i in differing
        )
        routed_total += sum(1 for r in results if r.route != REF)
        violations += served_differing > 0.05 * n
    print(f"\nsorted batches through run_batch: {violations}/{runs} violated")
    assert violations <= 0.08 * runs
    assert routed_total > 0.2 * runs * n, "the test must exercise routing, not only probing"


def test_batch_certificates_state_the_count_of_answers_that_may_differ():
    """Each batch certificate says how many of the batch's answers may differ so far (items
    routed to candidates, at most their bound's count each) against the budget epsilon * N;
    the count never exceeds the budget and the last one matches the ledger's."""
    n = 600
    differing = set(random.Random(5).sample(range(n), 6))
    router = SmartRouter(batch_config(n), endpoints(differing), seed=5)
    results = router.run_batch(list(range(n)))
    certs = [r.certificate for r in results]
    assert all(c.batch_size == n and c.budget == pytest.approx(30.0) for c in certs)
    counts = [c.differing_at_most for c in certs if c.route == MINI]
    assert counts, "the candidate should carry part of the batch"
    assert all(0 < x <= 30.0 + 1e-9 for x in counts)
    ledger = router.ledger()
    assert ledger.differing_at_most == pytest.approx(max(counts), abs=1.0)
    assert "may differ" in ledger.summary()
