"""A store that becomes unreachable: requests are answered by the reference, unrecorded, the
counters are never half-updated, and routing resumes once the store is back."""

from __future__ import annotations

import asyncio
import logging

import pytest

from smart_core import Answer, SmartConfig, SmartRouter
from smart_core.errors import StoreError
from smart_core.policy import keys as K
from smart_core.stores import MemoryStore

REF, MINI = "gpt-4o", "gpt-4o-mini"


class FlakyStore(MemoryStore):
    """A memory store whose every call fails while ``down`` (as a network store does)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreError("store at redis://***@h:6379/0 is unreachable")

    def add(self, task, increments, *, event_id=None):
        self._check()
        return super().add(task, increments, event_id=event_id)

    def read(self, task):
        self._check()
        return super().read(task)

    def get_meta(self, task, key):
        self._check()
        return super().get_meta(task, key)

    def set_meta(self, task, key, value):
        self._check()
        return super().set_meta(task, key, value)


def endpoints():
    async def ref(request):
        return Answer("same", cost=1.0)

    async def mini(request):
        return Answer("same", cost=0.01)

    return {REF: ref, MINI: mini}


def router(store) -> SmartRouter:
    config = SmartConfig(
        task="t", epsilon=0.1, reference=REF, candidates=[MINI], expected_requests=100_000
    )
    return SmartRouter(config, endpoints(), store=store, seed=3, wait_for_probes=True)


def test_an_outage_sends_requests_to_the_reference_unrecorded_then_routing_resumes(caplog):
    store = FlakyStore()
    r = router(store)
    for _ in range(300):
        r.run("q")
    before = dict(store.read("t"))
    assert before.get(K.routed(MINI), 0) > 0, "the candidate should carry traffic by now"
    store.down = True
    with caplog.at_level(logging.WARNING, logger="smart_core"):
        during = [r.run("q") for _ in range(50)]
    assert {x.route for x in during} == {REF}
    assert all(not x.probe and x.certificate.bound == 1.0 for x in during)
    assert sum("unreachable" in m for m in caplog.messages) == 1  # once per outage
    store.down = False
    assert store.read("t") == before  # nothing half-written
    after = [r.run("q") for _ in range(200)]
    assert any(x.route == MINI for x in after)
    assert store.read("t")[K.REQUESTS] == before[K.REQUESTS] + 200


def test_the_store_failing_mid_request_still_returns_the_answer():
    store = FlakyStore()
    r = router(store)

    async def main():
        ticket = await r.abegin()
        store.down = True
        routed = await r.afinish(ticket, Answer("same", model=ticket.route, cost=1.0))
        store.down = False
        return routed

    routed = asyncio.run(main())
    assert routed.answer.text == "same"
    counters = store.read("t")
    assert counters[K.REQUESTS] == 1 and counters.get(K.ANSWERED, 0) == 0


@pytest.mark.slow
def test_a_real_redis_restart_is_survived():
    from smart_core.stores import open_store
    from smart_core.testing.servers import RedisServer, ServerUnavailable

    try:
        server = RedisServer().start()
    except (ServerUnavailable, OSError) as exc:
        pytest.skip(f"no Redis server: {exc}")
    try:
        store = open_store(server.url)
        r = router(store)
        for _ in range(100):
            r.run("q")
        server.stop()
        during = [r.run("q") for _ in range(5)]
        assert {x.route for x in during} == {REF}
        server.start()
        for _ in range(20):
            r.run("q")
        assert store.read("t")[K.REQUESTS] == 120
        r.close()
    finally:
        server.close()
