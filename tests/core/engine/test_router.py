"""SmartRouter over plain async endpoints: answers, probes, failures, state and costs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections import Counter

import pytest

from smart_core import (
    Answer,
    MemoryStore,
    PriceTable,
    Routed,
    SmartConfig,
    SmartRouter,
    Usage,
)
from smart_core.policy import keys as K

REF = "gpt-4o"
MINI = "gpt-4o-mini"
NANO = "gpt-4.1-nano"
HAIKU = "claude-3-5-haiku"


class RateLimited(Exception):
    """Stands in for a provider's rate-limit error."""


class ReferenceDown(Exception):
    """A custom error type the reference raises."""


def config(candidates=(MINI,), **kw) -> SmartConfig:
    settings = {"task": "t", "epsilon": 0.05, "reference": REF, "candidates": list(candidates)}
    settings.update(kw)
    return SmartConfig(**settings)


#: In batch mode no item goes to a candidate before it has had 20 probes, and on a 1,000-item
#: batch probing a cheap candidate can pay back: the first requests are all probes.
ALL_PROBES = {"batch_size": 1000}


def agrees(request: int, rate: float) -> bool:
    """Deterministic per-request agreement with the given long-run rate."""
    return random.Random(request * 7919 + 17).random() < rate


DEFAULT_USAGE = Usage(1000, 100)


def reference_endpoint(calls: list | None = None, usage: Usage = DEFAULT_USAGE):
    async def call(request):
        if calls is not None:
            calls.append((REF, usage))
        return Answer(text=f"ref-{request}", usage=usage)

    return call


def candidate_endpoint(
    name: str, rate: float, calls: list | None = None, usage: Usage = DEFAULT_USAGE
):
    async def call(request):
        if calls is not None:
            calls.append((name, usage))
        text = f"ref-{request}" if agrees(request, rate) else f"{name}-wrong-{request}"
        return Answer(text=text, usage=usage)

    return call


def trusted(store: MemoryStore, candidate: str = MINI, n: int = 3000) -> MemoryStore:
    """Counters of a task whose candidate agreed on every one of ``n`` probes."""
    store.add(
        "t",
        {
            K.REQUESTS: float(n),
            K.PROBES: float(n),
            K.routed(REF): float(n),
            K.probes_of(candidate): float(n),
            K.agreements(candidate): float(n),
        },
    )
    return store


# -- serving and learning ---------------------------------------------------------------------


async def test_probes_answer_with_the_reference_and_a_good_candidate_takes_over():
    """Probes return the reference's answer and record the candidate's agreement; after a few
    thousand requests a 0.97-agreement candidate carries most traffic. Every certificate states
    the route, probe flag, epsilon, delta, method, a mix summing to 1 and a bound >= 1 - eps."""
    router = SmartRouter(
        config(),
        {REF: reference_endpoint(), MINI: candidate_endpoint(MINI, 0.97)},
        seed=1,
        wait_for_probes=True,
    )
    results: list[tuple[int, Routed]] = []
    for i in range(3000):
        results.append((i, await router.arun(i)))

    probes = [(i, r) for i, r in results if r.probe]
    assert probes, "some requests must have been probes"
    for i, r in probes:
        assert r.route == REF
        assert r.answer.text == f"ref-{i}"
        assert r.answer.model == REF
    for i, r in results:
        if r.route == MINI:
            assert not r.probe
            assert r.answer.model == MINI
            assert r.answer.text in (f"ref-{i}", f"{MINI}-wrong-{i}")

    ledger = router.ledger()
    stats = ledger.routes[MINI]
    assert stats.probes == len(probes)
    assert stats.agreements == sum(agrees(i, 0.97) for i, _ in probes)
    assert ledger.probes == len(probes)
    assert ledger.requests == 3000
    assert stats.requests == sum(r.route == MINI for _, r in results)

    late = Counter(r.route for _, r in results[-1000:])
    assert late[MINI] >= 650

    for _, r in results:
        cert = r.certificate
        assert cert.task == "t"
        assert cert.route == r.route and cert.probe == r.probe
        assert cert.epsilon == 0.05 and cert.delta == 0.05
        assert cert.method == "anytime" and cert.mode == "request"
        assert sum(cert.mix.values()) == pytest.approx(1.0)
        assert cert.bound >= 1 - 0.05 - 1e-9
        assert cert.bounds[REF] == 1.0
    await router.aclose()


async def test_candidate_failure_while_routed_falls_back_to_the_reference():
    """A routed candidate that raises: the user gets the reference's answer (route == reference,
    not a probe), no exception escapes, and failures and fallbacks are counted."""
    store = trusted(MemoryStore())

    async def broken(request):
        raise RateLimited("429")

    router = SmartRouter(
        config(audit_rate=0.0, cooldown_after=0),  # no cooldown: every request falls back
        {REF: reference_endpoint(), MINI: broken},
        store=store,
        seed=0,
        wait_for_probes=True,
    )
    fallbacks = 0
    for i in range(50):
        r = await router.arun(i)
        assert r.route == REF
        assert r.answer.text == f"ref-{i}"
        assert r.certificate.route == REF
        if not r.probe:
            fallbacks += 1
    assert fallbacks >= 40  # the trusted candidate was drawn nearly every time
    counters = store.read("t")
    assert counters[K.fallbacks(MINI)] == fallbacks
    assert counters[K.failures(MINI)] >= fallbacks
    assert counters[K.probes_of(MINI)] == 3000  # failures are not disagreements
    stats = router.ledger().routes[MINI]
    assert stats.fallbacks == fallbacks
    assert stats.failures == counters[K.failures(MINI)]
    # The user was charged the reference's call, not the failed candidate's.
    assert counters[K.calls(REF)] == 50
    assert K.calls(MINI) not in counters


async def test_candidate_failure_during_a_probe_is_not_a_disagreement():
    """A candidate raising (rate limit) during a probe: the request succeeds with the reference's
    answer, the failure is counted, and its probe and agreement counters do not move; a healthy
    candidate probed alongside is still recorded."""

    async def limited(request):
        raise RateLimited("slow down")

    router = SmartRouter(
        config(candidates=[MINI, NANO], **ALL_PROBES),
        {REF: reference_endpoint(), MINI: limited, NANO: candidate_endpoint(NANO, 1.0)},
        seed=0,
        wait_for_probes=True,
    )
    probes = 0
    for i in range(5):
        r = await router.arun(i)
        assert r.route == REF and r.answer.text == f"ref-{i}"
        probes += r.probe
    assert probes == 5
    counters = router.store.read("t")
    assert counters.get(K.probes_of(MINI), 0.0) == 0.0
    assert counters.get(K.agreements(MINI), 0.0) == 0.0
    assert counters[K.failures(MINI)] == probes
    assert counters[K.probes_open(MINI)] == 0.0  # a failed probe is settled, not left open
    assert counters[K.probes_of(NANO)] == probes
    assert counters[K.agreements(NANO)] == probes
    assert router.ledger().routes[MINI].lower == 0.0


async def test_reference_failure_propagates_its_own_exception_type():
    """The reference raising is the caller's problem: the exact exception type escapes arun,
    both on a probe and when a routed candidate failed and the fallback reference fails too."""

    async def down(request):
        raise ReferenceDown("reference unavailable")

    router = SmartRouter(
        config(), {REF: down, MINI: candidate_endpoint(MINI, 1.0)}, seed=0, wait_for_probes=True
    )
    with pytest.raises(ReferenceDown, match="unavailable"):
        await router.arun(0)
    await router.aflush()

    tried: list[int] = []

    async def broken(request):
        tried.append(request)
        raise RateLimited("429")

    store = trusted(MemoryStore())
    router2 = SmartRouter(config(audit_rate=0.0), {REF: down, MINI: broken}, store=store, seed=0)
    for i in range(5):
        with pytest.raises(ReferenceDown):
            await router2.arun(i)
    await router2.aflush()
    assert tried  # the routed candidate failed first, then the fallback reference raised
    # Each of those candidate failures is on record although the request itself failed.
    assert store.read("t")[K.failures(MINI)] == len(tried)


# -- concurrency ------------------------------------------------------------------------------


async def test_background_probe_does_not_delay_the_answer():
    """With wait_for_probes=False the answer comes back while a candidate is still running: the
    candidate here can only finish after arun has returned (it waits for an event set
    afterwards), so arun waiting for it would time out; its probe is recorded after aflush()."""
    release = asyncio.Event()

    async def slow(request):
        await release.wait()
        return Answer(text=f"ref-{request}", usage=Usage(1000, 100))

    router = SmartRouter(config(**ALL_PROBES), {REF: reference_endpoint(), MINI: slow}, seed=0)
    assert not router.wait_for_probes
    r = await asyncio.wait_for(router.arun(1), timeout=5.0)
    assert r.probe and r.route == REF
    pending = router.store.read("t")
    assert pending.get(K.probes_of(MINI), 0.0) == 0.0
    # Still open, the probe is in the bounds' sample (the lower bound counts it as differing).
    assert pending[K.probes_open(MINI)] == 1.0
    release.set()
    await router.aflush()
    counters = router.store.read("t")
    assert counters[K.probes_of(MINI)] == 1.0
    assert counters[K.agreements(MINI)] == 1.0
    assert counters[K.probes_open(MINI)] == 0.0
    await router.aclose()


async def test_probe_calls_candidates_concurrently_with_the_reference():
    """During a probe the candidates are called while the reference call is still running: each
    side waits for the other to have started, which deadlocks (times out) if calls were
    sequential."""
    ref_started = asyncio.Event()
    cand_started = asyncio.Event()

    async def ref(request):
        ref_started.set()
        await asyncio.wait_for(cand_started.wait(), 2.0)
        return Answer(text="A", usage=Usage(10, 1))

    async def cand(request):
        cand_started.set()
        await asyncio.wait_for(ref_started.wait(), 2.0)
        return Answer(text="A", usage=Usage(10, 1))

    router = SmartRouter(config(**ALL_PROBES), {REF: ref, MINI: cand}, seed=0, wait_for_probes=True)
    r = await router.arun(0)
    assert r.probe and r.answer.text == "A"
    assert router.store.read("t")[K.agreements(MINI)] == 1.0


class LockstepReads(MemoryStore):
    """The first two reads wait for each other: two workers reading the counters at the same
    moment, before either has written its reservation."""

    def __init__(self) -> None:
        super().__init__()
        self._barrier = threading.Barrier(2)
        self._lockstep = 2
        self._mu = threading.Lock()

    def read(self, task: str) -> dict[str, float]:
        counters = super().read(task)
        with self._mu:
            wait, self._lockstep = self._lockstep > 0, self._lockstep - 1
        if wait:
            self._barrier.wait(timeout=5.0)
        return counters


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_concurrent_deciders_cannot_overspend_the_batch_budget_together(mode):
    """A 100-item batch (budget 5 differing answers) with 4 items already sent to the candidate
    and one item of budget left: two workers (two routers on one store, in threads; with
    ``adecide`` each runs its own event loop, as separate processes would) read the counters at
    once and each would send its item to the candidate. The check made after the reservation
    sends the second to the reference, so the candidate gets 5 items, not 6. (One router orders
    its own decisions under a lock: two of its threads never read at once.)"""
    store = LockstepReads()
    store.add(
        "t",
        {
            K.REQUESTS: 99,
            K.PROBES: 30,
            K.routed(REF): 95,
            K.routed(MINI): 4,
            K.probes_of(MINI): 30,
            K.agreements(MINI): 30,
            K.calls(REF): 30,
            K.call_cost(REF): 0.1,
            K.calls(MINI): 30,
            K.call_cost(MINI): 0.006,
        },
    )
    endpoints = {REF: reference_endpoint(), MINI: candidate_endpoint(MINI, 1.0)}
    routers = [SmartRouter(config(batch_size=100), endpoints, store=store, seed=0) for _ in "ab"]
    router = routers[0]
    decisions: list = []

    def work(router: SmartRouter) -> None:
        if mode == "sync":
            decisions.append(router.decide())
        else:
            decisions.append(asyncio.run(router.adecide()))

    workers = [threading.Thread(target=work, args=(r,)) for r in routers]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(d.route for d in decisions) == sorted([MINI, REF])
    rerouted = next(d for d in decisions if d.route == REF)
    assert not rerouted.probe and rerouted.certificate.route == REF
    counters = store.read("t")
    assert counters[K.routed(MINI)] == 5.0
    assert counters[K.routed(REF)] == 96.0
    assert router.policy()._fits_budget(counters, router.policy().view(counters).lower, None)


# -- state ------------------------------------------------------------------------------------


async def test_same_request_id_is_recorded_once():
    """Outcomes are written with the request id as event id: serving the same request id twice
    records the calls, costs and probe outcome only once; a new id records again."""
    router = SmartRouter(
        config(**ALL_PROBES),
        {REF: reference_endpoint(), MINI: candidate_endpoint(MINI, 1.0)},
        seed=0,
        wait_for_probes=True,
    )
    first = await router.arun(1, request_id="req-1")
    assert first.probe and first.request_id == "req-1"
    once = router.store.read("t")
    again = await router.arun(1, request_id="req-1")
    assert again.probe
    twice = router.store.read("t")
    for key in (
        K.probes_of(MINI),
        K.agreements(MINI),
        K.calls(REF),
        K.calls(MINI),
        K.SPENT,
        K.REF_N,
        K.REF_COST,
        K.REQUESTS,
        K.PROBES,
    ):
        assert twice[key] == once[key], key
    await router.arun(1, request_id="req-2")
    thrice = router.store.read("t")
    assert thrice[K.probes_of(MINI)] == once[K.probes_of(MINI)] + 1
    assert thrice[K.calls(REF)] == once[K.calls(REF)] + 1
    # The store itself refuses a repeated event id.
    assert router.store.add("t", {K.SPENT: 1.0}, event_id="req-1") is False
    assert router.store.read("t")[K.SPENT] == thrice[K.SPENT]


async def test_two_routers_on_one_sqlite_file_share_counters(tmp_path):
    """Two SmartRouter instances on the same sqlite:/// file see each other's requests, probes
    and spend in their ledgers."""
    url = f"sqlite:///{tmp_path / 'smart.db'}"
    cfg = config(store=url)
    endpoints = {REF: reference_endpoint(), MINI: candidate_endpoint(MINI, 1.0)}
    a = SmartRouter(cfg, endpoints, seed=1, wait_for_probes=True)
    b = SmartRouter(cfg, endpoints, seed=2, wait_for_probes=True)
    try:
        assert a.store is not b.store
        for i in range(5):
            await a.arun(i)
        mid = b.ledger()
        assert mid.requests == 5
        for i in range(5, 12):
            await b.arun(i)
        la, lb = a.ledger(), b.ledger()
        assert la.requests == lb.requests == 12
        assert la.probes == lb.probes >= 1
        assert la.routes[MINI].probes == lb.routes[MINI].probes == la.probes
        assert la.spent == pytest.approx(lb.spent)
        assert la.spent > mid.spent > 0
    finally:
        await a.aclose()
        await b.aclose()


# -- sync twin and construction ---------------------------------------------------------------


def test_run_works_outside_an_event_loop():
    """``run`` serves a request synchronously and records the probe before returning."""
    router = SmartRouter(
        config(), {REF: reference_endpoint(), MINI: candidate_endpoint(MINI, 1.0)}, seed=0
    )
    probes = 0
    for i in range(10):
        r = router.run(i)
        assert isinstance(r, Routed)
        assert r.answer.text == f"ref-{i}"  # the candidate always agrees, so either route
        probes += r.probe
        # run() waits for the probe: it is recorded by the time the answer is returned.
        assert router.store.read("t").get(K.probes_of(MINI), 0.0) == probes
    assert probes >= 1
    assert router.wait_for_probes is False  # restored afterwards
    assert router.ledger().requests == 10
    router.close()


async def test_run_inside_a_running_loop_raises_a_clear_error():
    """``run`` inside a running loop raises RuntimeError pointing at ``await router.arun``."""
    router = SmartRouter(
        config(), {REF: reference_endpoint(), MINI: candidate_endpoint(MINI, 1.0)}, seed=0
    )
    with pytest.raises(RuntimeError, match=r"running event loop.*arun"):
        router.run(1)
    assert router.ledger().requests == 0  # nothing was reserved


def test_missing_endpoint_names_the_model():
    """Every configured model needs an endpoint; the error names the missing one."""
    with pytest.raises(ValueError, match=HAIKU):
        SmartRouter(
            config(candidates=[MINI, HAIKU]),
            {REF: reference_endpoint(), MINI: candidate_endpoint(MINI, 1.0)},
        )


# -- costs ------------------------------------------------------------------------------------


async def test_spent_is_the_sum_of_priced_usages_and_savings_follow():
    """ledger.spent equals every call's usage at list price (probe candidates included); the
    reference-only estimate is exact for a constant-cost reference, and savings exceed 1 once
    the cheap candidate carries traffic."""
    calls: list[tuple[str, Usage]] = []
    ref_usage, cand_usage = Usage(1200, 80), Usage(1100, 90)
    router = SmartRouter(
        config(candidates=[MINI, HAIKU]),
        {
            REF: reference_endpoint(calls, ref_usage),
            MINI: candidate_endpoint(MINI, 0.99, calls, cand_usage),
            HAIKU: candidate_endpoint(HAIKU, 0.9, calls, cand_usage),
        },
        seed=4,
        wait_for_probes=True,
    )
    results = [await router.arun(i) for i in range(1500)]
    table = PriceTable()
    expected = sum(table.cost(model, usage) for model, usage in calls)
    ledger = router.ledger()
    assert ledger.spent == pytest.approx(expected, rel=1e-9)
    assert sum(r.cost for r in results) == pytest.approx(
        ledger.spent - ledger.probe_candidate_spend, rel=1e-9
    )
    ref_cost = table.cost(REF, ref_usage)
    assert ref_cost == pytest.approx((1200 * 2.5 + 80 * 10.0) / 1e6)
    for r in results:
        if r.route == REF:
            assert r.cost == pytest.approx(ref_cost)
    assert ledger.reference_estimate == pytest.approx(1500 * ref_cost, rel=1e-9)
    lo, hi = ledger.reference_interval
    assert lo <= ledger.reference_estimate <= hi
    assert sum(r.route == MINI for r in results) > 750
    assert ledger.savings == pytest.approx(ledger.reference_estimate / ledger.spent)
    assert ledger.savings > 1.5


async def test_answer_cost_overrides_usage_pricing():
    """An endpoint that states ``cost`` is charged exactly that, whatever its usage says."""
    huge = Usage(1_000_000, 1_000_000)

    async def ref(request):
        return Answer(text="A", usage=huge, cost=0.01)

    async def cand(request):
        return Answer(text="A", usage=huge, cost=0.0001)

    router = SmartRouter(config(), {REF: ref, MINI: cand}, seed=0, wait_for_probes=True)
    results = [await router.arun(i) for i in range(40)]
    for r in results:
        assert r.cost == (0.01 if r.route == REF else 0.0001)
    counters = router.store.read("t")
    n_ref, n_mini = counters[K.calls(REF)], counters.get(K.calls(MINI), 0.0)
    assert router.ledger().spent == pytest.approx(0.01 * n_ref + 0.0001 * n_mini)
    assert router.cost_of(Answer(text="x", model=MINI, usage=Usage(1000, 0))) == pytest.approx(
        1000 * 0.15 / 1e6
    )


# -- serving step by step (what the framework adapters drive) ----------------------------------


def test_sync_steps_probe_in_threads_without_waiting_for_candidates():
    """begin/start_probes/finish/settle: the candidate runs in a worker thread while the caller
    answers; settle() returns before the candidate has finished (it waits on an event set only
    afterwards) and the probe is recorded once the candidate returns."""
    import threading

    release = threading.Event()
    started = threading.Event()

    def candidate(model: str) -> Answer:
        started.set()
        assert release.wait(5.0)
        return Answer(text="same", usage=Usage(10, 1))

    router = SmartRouter(config(**ALL_PROBES), seed=0)
    ticket = router.begin(request_id="r1")
    assert ticket.probe and ticket.route == REF and ticket.probe_models == (MINI,)
    run = router.start_probes(ticket, candidate)
    assert started.wait(5.0), "the candidate must start while the caller answers"
    routed = router.finish(ticket, Answer(text="same", usage=Usage(10, 1)))
    run.settle(routed.answer)
    assert routed.probe and routed.route == REF and routed.answer.model == REF
    counters = router.store.read("t")
    assert counters[K.calls(REF)] == 1.0
    assert counters.get(K.probes_of(MINI), 0.0) == 0.0  # candidate still running
    release.set()
    router.flush(timeout=5.0)
    counters = router.store.read("t")
    assert counters[K.probes_of(MINI)] == 1.0
    assert counters[K.agreements(MINI)] == 1.0
    assert counters[K.calls(MINI)] == 1.0
    router.close()


def test_sync_probe_records_a_disagreement_and_a_failed_candidate_as_failure():
    """With wait_for_probes the outcome is recorded by settle(): a differing answer counts as a
    probe without agreement, a raising candidate as a failure (never a disagreement)."""
    router = SmartRouter(
        config(candidates=[MINI, NANO], **ALL_PROBES), seed=0, wait_for_probes=True
    )
    ticket = router.begin()
    assert set(ticket.probe_models) == {MINI, NANO}

    def call(model: str) -> Answer:
        if model == NANO:
            raise RateLimited("429")
        return Answer(text="other", usage=Usage(10, 1))

    run = router.start_probes(ticket, call)
    routed = router.finish(ticket, Answer(text="ref", usage=Usage(10, 1)))
    run.settle(routed.answer)
    counters = router.store.read("t")
    assert counters[K.probes_of(MINI)] == 1.0
    assert counters.get(K.agreements(MINI), 0.0) == 0.0
    assert counters[K.failures(NANO)] == 1.0
    assert counters.get(K.probes_of(NANO), 0.0) == 0.0
    router.close()


def test_cancelled_probe_records_nothing():
    """A probe abandoned because the reference failed leaves no candidate outcome behind."""
    router = SmartRouter(config(**ALL_PROBES), seed=0, wait_for_probes=True)
    ticket = router.begin()
    run = router.start_probes(ticket, lambda m: Answer(text="x", usage=Usage(10, 1)))
    run.cancel()
    assert run.wait(5.0)
    router.flush()
    counters = router.store.read("t")
    assert counters.get(K.probes_of(MINI), 0.0) == 0.0
    assert counters.get(K.calls(MINI), 0.0) == 0.0
    router.close()


async def test_async_fall_back_records_the_failure_and_reroutes_to_the_reference():
    """afall_back on a candidate route records one failure and one fallback, returns a ticket
    for the reference whose certificate names it, and afinish then records the reference call;
    a reference ticket cannot fall back (its error belongs to the user)."""
    store = trusted(MemoryStore())
    router = SmartRouter(config(), store=store, seed=3)
    for i in range(200):
        ticket = await router.abegin(request_id=f"q{i}")
        if ticket.route == MINI and not ticket.probe:
            break
    else:
        pytest.fail("a trusted candidate should carry some traffic")
    back = await router.afall_back(ticket, RateLimited("429"))
    assert back.route == REF and back.fallback and not back.probe and back.probe_models == ()
    assert back.certificate.route == REF
    routed = await router.afinish(back, Answer(text="ref", usage=Usage(10, 1)))
    assert routed.route == REF and routed.certificate.route == REF
    counters = router.store.read("t")
    assert counters[K.failures(MINI)] == 1.0
    assert counters[K.fallbacks(MINI)] == 1.0
    assert counters[K.agreements(MINI)] == 3000.0  # the failure did not count as a probe
    with pytest.raises(ValueError, match="reference"):
        await router.afall_back(back)


async def test_arun_without_endpoints_explains_how_to_serve():
    router = SmartRouter(config(), seed=0)
    with pytest.raises(RuntimeError, match="endpoints"):
        await router.arun(1)


async def test_record_failure_counts_once_and_is_not_a_disagreement():
    """A stream cut after part of it reached the user: one failure for the route, idempotent per
    request, no call, cost or probe recorded."""
    router = SmartRouter(config(**ALL_PROBES), seed=0)
    ticket = await router.abegin(request_id="cut")
    await router.arecord_failure(ticket, RuntimeError("connection reset"))
    router.record_failure(ticket)  # a retry of the same write changes nothing
    counters = router.store.read("t")
    assert counters[K.failures(ticket.route)] == 1.0
    assert counters.get(K.calls(ticket.route), 0.0) == 0.0
    assert counters.get(K.probes_of(MINI), 0.0) == 0.0


def test_router_leaves_its_configuration_for_smart_report(tmp_path):
    """The first decision of a task records the config in the store (what `smart report` needs
    to rebuild bounds), for every task the router serves; a config that cannot be serialised
    (a lambda comparator) leaves counters only instead of failing the request."""
    from smart_core.reporting.report import report_task, task_config

    url = f"sqlite:///{tmp_path / 's.db'}"
    router = SmartRouter(config(**ALL_PROBES), store=url, seed=0)
    router.begin()
    router.begin("other-task")
    recorded = task_config(router.store, "t")
    assert recorded is not None and recorded.epsilon == 0.05 and recorded.reference.name == REF
    assert task_config(router.store, "other-task") is not None
    assert report_task(router.store, "t").requests == 1
    router.close()

    odd = SmartRouter(
        config(comparator=lambda a, b: a.text == b.text, **ALL_PROBES), store=MemoryStore()
    )
    odd.begin()
    assert odd.store.read("t")[K.REQUESTS] == 1.0


def test_probe_cut_short_by_the_loop_ending_counts_the_unanswered_candidate_as_differing():
    """asyncio.run() cancels pending tasks when the caller's coroutine returns: a background
    probe cut short that way still records the candidate that had answered (its cost and its
    agreement); the one still running counts as a differing answer (it would have served, had it
    been routed), never as a failure that leaves the sample."""

    async def fast(request):
        return Answer(text=f"ref-{request}", usage=Usage(10, 1))

    async def never(request):
        await asyncio.sleep(3600)

    router = SmartRouter(
        config(candidates=[MINI, NANO], **ALL_PROBES),
        {REF: reference_endpoint(), MINI: fast, NANO: never},
        seed=0,
    )

    async def serve_once():
        routed = await router.arun(7)
        await asyncio.sleep(0.05)  # the fast candidate answers; the slow one never does
        return routed

    routed = asyncio.run(serve_once())  # returns with the probe still pending
    assert routed.probe
    counters = router.store.read("t")
    assert counters[K.probes_of(MINI)] == 1.0 and counters[K.agreements(MINI)] == 1.0
    assert counters[K.calls(MINI)] == 1.0
    assert counters[K.probes_of(NANO)] == 1.0 and counters[K.agreements(NANO)] == 0.0
    assert counters[K.cut_short(NANO)] == 1.0
    assert counters.get(K.failures(NANO), 0.0) == 0.0
    assert counters[K.probes_open(NANO)] == 0.0


def test_short_lived_loops_never_certify_a_candidate_whose_differing_answers_are_slow(caplog):
    """The audit's scenario: every request served by its own asyncio.run(router.arun(x)) on one
    store; the candidate agrees on exactly 90 % of requests and its differing answers take
    longer, so each loop ends before they arrive. Cut-short probes must stay in the sample as
    differing answers: the candidate's bound never exceeds its true agreement, and the user is
    told how to keep probes whole."""
    caplog.set_level(logging.WARNING, logger="smart_core")

    async def reference(request):
        return Answer(text=f"ref-{request}", usage=Usage(1000, 100))

    async def candidate(request):
        if request % 10 == 9:  # every tenth answer differs, and comes after the loop has ended
            await asyncio.sleep(0.2)
            return Answer(text="wrong", usage=Usage(1000, 100))
        return Answer(text=f"ref-{request}", usage=Usage(1000, 100))

    store = MemoryStore()
    cfg = config(epsilon=0.05, expected_requests=100_000, audit_rate=0.0)
    router = SmartRouter(cfg, {REF: reference, MINI: candidate}, store=store, seed=1)
    highest = 0.0
    for i in range(600):
        routed = asyncio.run(router.arun(i))
        highest = max(highest, routed.certificate.bounds[MINI])
    counters = store.read("t")
    probes = counters[K.probes_of(MINI)]
    assert probes >= 500  # the candidate could not be trusted, so most requests were probes
    assert counters[K.agreements(MINI)] <= 0.9 * probes + 1
    assert counters[K.cut_short(MINI)] >= 0.09 * probes
    assert highest <= 0.9, f"bound {highest:.3f} above the true agreement 0.9"
    assert any("cut short" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("mode", ["online", "batch"])
async def test_answers_the_comparator_cannot_read_count_as_differing(mode, caplog):
    """The audit's scenario: the candidate's answers are malformed JSON on exactly 10 % of
    requests and the user's comparator json.loads() them. Those answers are differing answers
    for the bound (served, they would reach the user unchecked), never missing ones; the error
    is counted and logged once, naming the comparator and the exception."""
    caplog.set_level(logging.WARNING, logger="smart_core")
    import json

    def same_json(candidate: Answer, reference: Answer) -> bool:
        return json.loads(candidate.text) == json.loads(reference.text)

    async def reference(request):
        return Answer(text=json.dumps({"id": request}), usage=Usage(1000, 100))

    async def candidate(request):
        text = "{'id': broken" if request % 10 == 9 else json.dumps({"id": request})
        return Answer(text=text, usage=Usage(1000, 100))

    extra = {"batch_size": 600} if mode == "batch" else {"expected_requests": 100_000}
    cfg = config(comparator=same_json, audit_rate=0.0, **extra)
    router = SmartRouter(cfg, {REF: reference, MINI: candidate}, seed=2, wait_for_probes=True)
    highest = 0.0
    for i in range(600):
        routed = await router.arun(i)
        highest = max(highest, routed.certificate.bounds[MINI])
    counters = router.store.read("t")
    probes = counters[K.probes_of(MINI)]
    assert counters[K.compare_errors(MINI)] >= 0.09 * probes
    assert counters[K.agreements(MINI)] <= 0.9 * probes + 1
    assert counters.get(K.failures(MINI), 0.0) == 0.0
    assert highest <= 0.9, f"bound {highest:.3f} above the true agreement 0.9"
    warnings = [r.getMessage() for r in caplog.records if "comparator" in r.getMessage()]
    assert len(warnings) == 1
    assert "same_json" in warnings[0] and "JSONDecodeError" in warnings[0]


async def test_a_candidate_failing_in_a_row_cools_down_then_is_tried_again(caplog):
    """A routed candidate that starts returning errors falls back on each request; after three
    failures in a row its requests go straight to the reference (no failing call, no added
    latency) until the cooldown ends, then it is tried again. Failures and cooled requests are
    counted and logged, never as disagreements."""
    caplog.set_level(logging.WARNING, logger="smart_core")
    now = [0.0]
    calls: list[str] = []
    down = [True]

    async def reference(request):
        calls.append(REF)
        return Answer(text=f"ref-{request}", usage=Usage(10, 1))

    async def candidate(request):
        calls.append(MINI)
        if down[0]:
            raise RateLimited("500 internal error")
        return Answer(text=f"ref-{request}", usage=Usage(10, 1))

    store = trusted(MemoryStore())
    cfg = config(audit_rate=0.0, expected_requests=100_000)
    router = SmartRouter(
        cfg, {REF: reference, MINI: candidate}, store=store, seed=0, clock=lambda: now[0]
    )
    served = [await router.arun(i) for i in range(20)]
    assert all(r.route == REF for r in served)
    assert calls.count(MINI) == 3, "the candidate was called after it had failed 3 times in a row"
    counters = store.read("t")
    assert counters[K.failures(MINI)] == 3.0 and counters[K.fallbacks(MINI)] == 3.0
    assert counters[K.cooled(MINI)] >= 15.0
    assert counters[K.agreements(MINI)] == 3000.0 and counters[K.probes_of(MINI)] == 3000.0
    assert any("failed 3 times in a row" in r.getMessage() for r in caplog.records)

    now[0] = 31.0  # the cooldown is over and the provider is back
    down[0] = False
    again = [await router.arun(100 + i) for i in range(10)]
    assert sum(r.route == MINI for r in again) >= 8


def test_cooldown_settings_are_checked():
    with pytest.raises(Exception, match="cooldown_after must be >= 0"):
        config(cooldown_after=-1)


async def test_requests_the_reference_failed_on_add_nothing_to_the_reference_only_estimate():
    """Savings are money not spent on answers the user got: a request whose reference failed
    (no answer) would have cost the reference nothing either, so it must not inflate the
    reference-only estimate or the savings."""

    async def reference(request):
        if request % 2:
            raise ReferenceDown("503")
        return Answer(text=f"ref-{request}", usage=Usage(1000, 100))

    router = SmartRouter(
        config(**ALL_PROBES), {REF: reference, MINI: candidate_endpoint(MINI, 1.0)}
    )
    for i in range(20):
        with contextlib.suppress(ReferenceDown):
            await router.arun(i)
    ledger = router.ledger()
    assert ledger.requests == 20
    assert ledger.reference_estimate == pytest.approx(ledger.spent - ledger.probe_candidate_spend)
    assert ledger.savings <= 1.0
