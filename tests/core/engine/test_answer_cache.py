"""The exact answer cache in the serving flow, through SmartRouter over plain endpoints: what is
stored (only the reference's answers), what is served (identical requests in the same scope),
how probes and the ledger see hits, expiry, and a failing store."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from smart_core import Answer, Calls, MemoryStore, SmartConfig, SmartRouter, StoreError, Usage
from smart_core.cache import EXACT_ROUTE, CacheHit, CacheLookup
from smart_core.cache import answer_cache as answer_cache_module
from smart_core.engine.effects import Finish, LookUp, ServeHit, Settle, StartProbes
from smart_core.engine.flow import serve_flow
from smart_core.engine.routes import RouteTable
from smart_core.policy import keys as K

REF, MINI = "gpt-4o", "gpt-4o-mini"
USAGE = Usage(1000, 100)


def make_router(store=None, candidate_rate: float = 1.0, **settings) -> tuple[SmartRouter, Counter]:
    calls: Counter = Counter()

    async def ref(request):
        calls[REF] += 1
        return Answer(text=f"ref:{request['q']}", usage=USAGE)

    async def mini(request):
        calls[MINI] += 1
        return Answer(text=f"ref:{request['q']}" if candidate_rate == 1.0 else "wrong", usage=USAGE)

    config = SmartConfig(
        task="t", epsilon=0.05, reference=REF, candidates=[MINI], cache="exact", **settings
    )
    router = SmartRouter(
        config, {REF: ref, MINI: mini}, store=store or MemoryStore(), seed=3, wait_for_probes=True
    )
    return router, calls


def trusted(store: MemoryStore, n: int = 3000) -> MemoryStore:
    """A task whose candidate agreed on all of ``n`` probes: the mix sends it nearly everything."""
    inc = {K.REQUESTS: n, K.PROBES: n, K.routed(REF): n, K.probes_of(MINI): n}
    store.add("t", {**inc, K.agreements(MINI): n, K.calls(REF): n, K.call_cost(REF): n * 0.0035})
    return store


async def test_a_repeated_request_is_answered_from_the_cache_without_any_call():
    router, calls = make_router()
    first = await router.arun({"q": "hello"})
    assert first.route == REF and calls[REF] == 1  # a new task probes: the reference answers
    again = await router.arun({"q": "hello"})
    assert again.route == EXACT_ROUTE and again.cost == 0.0
    assert again.answer.text == "ref:hello"
    assert again.certificate.route == EXACT_ROUTE
    assert calls[REF] == 1  # the hit called no model (the probe it was drew calls MINI only)
    other = await router.arun({"q": "other"})
    assert other.route == REF and calls[REF] == 2


async def test_a_candidates_answer_is_never_stored():
    store = trusted(MemoryStore())
    router, calls = make_router(store)
    routes = Counter()
    for _ in range(20):
        routes[(await router.arun({"q": "same"})).route] += 1
    # Only once the reference has answered (an audit, about 1 in 100) could a hit happen;
    # until then every repeat goes to the candidate the mix drew.
    assert routes[MINI] >= 19 - routes[EXACT_ROUTE]
    assert calls[REF] == routes[REF]
    assert store.cache_size("t") == (1 if calls[REF] else 0)


async def test_tenants_and_users_never_share_an_entry():
    router, calls = make_router()
    await router.arun({"q": "x"}, tenant="acme")
    assert (await router.arun({"q": "x"}, tenant="acme")).route == EXACT_ROUTE
    assert (await router.arun({"q": "x"}, tenant="globex")).route == REF
    assert (await router.arun({"q": "x"})).route == REF  # the config's tenant, "default"
    per_user, calls = make_router(cache_answers="per_user")
    await per_user.arun({"q": "x"}, tenant="acme", user="ann")
    assert (await per_user.arun({"q": "x"}, tenant="acme", user="ann")).route == EXACT_ROUTE
    assert (await per_user.arun({"q": "x"}, tenant="acme", user="bob")).route == REF
    before = calls[REF]
    for _ in range(2):  # no user: neither read nor written
        assert (await per_user.arun({"q": "x"}, tenant="acme")).route == REF
    assert calls[REF] == before + 2


async def test_a_hit_on_a_probe_stands_in_for_the_reference_and_the_probe_is_recorded():
    router, calls = make_router(candidate_rate=0.0)
    await router.arun({"q": "p"})
    probes_before = router.store.read("t")[K.PROBES]
    served = await router.arun({"q": "p"})  # a young task probes every request
    counters = router.store.read("t")
    assert served.probe and served.route == EXACT_ROUTE
    assert calls[REF] == 1 and calls[MINI] == 2
    assert counters[K.PROBES] == probes_before + 1
    assert counters[K.probes_of(MINI)] == 2 and counters.get(K.agreements(MINI), 0) == 0


async def test_the_ledger_counts_hits_misses_and_what_the_hits_saved():
    router, _ = make_router()
    for q in ["a", "b", "a", "a", "c", "b"]:
        await router.arun({"q": q})
    ledger = router.ledger()
    assert (ledger.cache_hits, ledger.cache_misses) == (3, 3)
    ref_cost = router.cost_of(Answer(model=REF, usage=USAGE))
    assert ledger.cache_saved == pytest.approx(3 * ref_cost)  # each hit was drawn as a probe
    assert ledger.cache_hit_reference_cost == pytest.approx(3 * ref_cost)
    assert ledger.requests == 6 and ledger.spent > 0
    assert "answer cache: 3 hits, 3 misses (50.0% served from it)" in ledger.summary()


async def test_an_entry_expires_after_its_ttl():
    router, calls = make_router(cache_ttl_seconds=60.0)
    now = [1000.0]
    router.cache.clock = lambda: now[0]
    await router.arun({"q": "t"})
    now[0] += 59.0
    assert (await router.arun({"q": "t"})).route == EXACT_ROUTE
    now[0] += 2.0
    assert (await router.arun({"q": "t"})).route == REF and calls[REF] == 2


async def test_the_cache_is_off_by_default_and_a_failing_store_only_costs_the_cache(monkeypatch):
    plain = SmartConfig(task="t", epsilon=0.05, reference=REF, candidates=[MINI])
    assert SmartRouter(plain).request_cache({"q": 1}) is None

    class NoCacheStore(MemoryStore):
        def cache_get(self, *a, **k):
            raise StoreError("down")

        def cache_put(self, *a, **k):
            raise StoreError("down")

    seen: list[str] = []
    log = answer_cache_module._log  # other tests may reconfigure logging: watch the call itself
    monkeypatch.setattr(log, "warning", lambda msg, *args: seen.append(msg % args))
    router, calls = make_router(NoCacheStore())
    for _ in range(2):
        assert (await router.arun({"q": "z"})).route == REF
    assert calls[REF] == 2
    assert sum("answer cache" in m for m in seen) == 1  # one warning for the outage


def test_a_request_with_no_json_form_is_served_uncached():
    router, _ = make_router()
    assert router.request_cache({"q": object()}) is None
    assert router.request_cache({"q": 1}) is not None


# -- the flow itself -----------------------------------------------------------------------------


def test_the_flow_remembers_only_what_the_reference_answered():
    routes = RouteTable.of_models(REF, [MINI])
    router, _ = make_router(trusted(MemoryStore()))
    ticket = router.begin("t")
    assert ticket.route == MINI  # the mix sends the trusted candidate nearly everything
    flow = serve_flow(routes, "t")
    flow.send(None)
    assert flow.send(ticket) == LookUp(ticket)
    assert flow.send(CacheLookup()) == StartProbes(ticket)
    flow.send(None)  # the call
    answer = Answer("a", model=MINI)
    finish = flow.send(answer)
    assert finish == Finish(ticket, answer, cache_miss=True)
    with pytest.raises(StopIteration):
        flow.send(router.finish(ticket, answer))  # no Remember: a candidate answered


def test_the_flow_serves_an_exact_hit_and_settles_a_probe_with_it():
    routes = RouteTable.of_models(REF, [MINI])
    router, _ = make_router()
    ticket = router.begin("t")
    assert ticket.probe
    hit = CacheHit(EXACT_ROUTE, Answer("stored", model=REF), 0.01, 0.0)
    flow = serve_flow(routes, "t")
    flow.send(None)
    flow.send(ticket)
    assert flow.send(CacheLookup((hit,))) == StartProbes(ticket)
    effect = flow.send("probe-run")
    assert isinstance(effect, ServeHit) and effect.ticket.route == EXACT_ROUTE
    routed = router.serve_hit(effect.ticket, hit)
    assert flow.send(routed) == Settle("probe-run", hit.answer)
    with pytest.raises(StopIteration):
        flow.send(None)


def test_a_hit_streams_the_stored_answer_as_chunks():
    router, calls = make_router()
    asyncio.run(router.arun({"q": "s"}))

    class Codec:
        def encode(self, answer):
            return None

        def decode(self, cached):
            return cached.answer

        def chunks(self, answer):
            return [answer.text[:2], answer.text[2:]]

    cache = router.request_cache({"q": "s"}, codec=Codec())
    never = Calls(call=lambda m: pytest.fail("no model is called on a hit"), probe=lambda m: None)
    stream_calls = Calls(never.call, lambda m: Answer("ref:s"), streamed=None, cache=cache)
    out = list(router.serve_stream(stream_calls, task="t"))
    assert [o.chunk for o in out] == ["re", "f:s"]
    assert out[-1].routed.route == EXACT_ROUTE and out[0].ticket.route == EXACT_ROUTE
    assert calls[REF] == 1


async def test_smart_report_shows_the_caches_hits_misses_and_savings(tmp_path):
    from smart_core import SqliteStore, store_report

    store = SqliteStore(tmp_path / "s.db")
    router, _ = make_router(store)
    for q in ["a", "a", "b", "a"]:
        await router.arun({"q": q})
    router.close()
    (report,) = store_report(f"sqlite:///{tmp_path / 's.db'}")
    assert "answer cache: 2 hits, 2 misses (50.0% served from it), saved ~$" in report.text()
    assert report.to_dict()["ledger"]["cache_hits"] == 2
