"""Decisions ordered per process: with many requests in flight, the bounds also read the probes
settled in decision order, so in-flight probes cost fewer extra probes (valid: see
tests/core/policy/test_settled_prefix.py for the level at the threshold)."""

from __future__ import annotations

import asyncio
import random

import pytest

from smart_core import Answer, MemoryStore, SmartConfig, SmartRouter, Usage
from smart_core.policy import keys as K

REF, MINI = "gpt-4o", "gpt-4o-mini"
USAGE = Usage(1000, 100)


class UnorderedMemoryStore(MemoryStore):
    """A memory store that says its async calls give up the event loop (as Redis's and
    PostgreSQL's do): its routers decide unordered, every open probe read as differing."""

    async_inline = False


def _endpoints(rng: random.Random):
    """The reference answers after a random pause (many requests in flight); the candidate
    agrees on 99 % of requests."""

    async def reference(request: int) -> Answer:
        await asyncio.sleep(rng.uniform(0.0, 0.02))
        return Answer(text=f"ref-{request}", usage=USAGE)

    async def candidate(request: int) -> Answer:
        ok = random.Random(request * 7919 + 17).random() < 0.99
        return Answer(text=f"ref-{request}" if ok else f"wrong-{request}", usage=USAGE)

    return {REF: reference, MINI: candidate}


async def _serve(store: MemoryStore, mode: str, requests: int, in_flight: int) -> dict[str, float]:
    size = {"batch_size": requests} if mode == "batch" else {"expected_requests": requests}
    config = SmartConfig(task="t", epsilon=0.05, reference=REF, candidates=[MINI], **size)
    router = SmartRouter(config, _endpoints(random.Random(3)), store=store, seed=5)
    gate = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with gate:
            await router.arun(i)

    if mode == "batch":  # the requests are in no particular order: the batch draws none
        await router.arun_batch(list(range(requests)), concurrency=in_flight)
    else:
        await asyncio.gather(*(one(i) for i in range(requests)))
    await router.aflush()
    return store.read("t")


@pytest.mark.parametrize("mode", ["online", "batch"])
async def test_many_requests_in_flight_probe_less_when_decisions_are_ordered(mode):
    ordered = await _serve(MemoryStore(), mode, 1_500, in_flight=64)
    unordered = await _serve(UnorderedMemoryStore(), mode, 1_500, in_flight=64)
    # Every request answered once, no probe left open, in both.
    for counters in (ordered, unordered):
        assert counters[K.REQUESTS] == 1_500
        assert counters.get(K.probes_open(MINI), 0.0) == 0.0
    assert ordered[K.PROBES] < 0.8 * unordered[K.PROBES]
    assert ordered[K.routed(MINI)] > unordered[K.routed(MINI)]


async def test_a_second_router_on_the_same_store_turns_the_prefix_off():
    """Two routers (as two processes would) deciding probes of one task interleave in the
    store's order: each then reads open probes as differing only."""
    store = MemoryStore()
    config = SmartConfig(task="t", epsilon=0.05, reference=REF, candidates=[MINI], batch_size=500)
    a = SmartRouter(config, _endpoints(random.Random(1)), store=store, seed=1)
    b = SmartRouter(config, _endpoints(random.Random(2)), store=store, seed=2)
    await a.arun(0)
    await b.arun(1)
    await a.arun(2)
    assert a._order is not None and a._order.state("t", store.read("t")).prefix is None
