"""The engine: an async-first router over plain async model endpoints.

An *endpoint* is any ``async def endpoint(request) -> Answer``. The router asks the policy for a
decision, reserves it in the store, calls the routed model (or, for a probe, the reference and
the live candidates concurrently), returns the answer with its certificate, and records costs and
agreements. The framework adapters and the command line all drive this one class.

Callers that must make the answering call themselves (a framework streaming tokens to its user,
with its own callbacks) use the same steps one by one: :meth:`SmartRouter.begin` reserves a
:class:`Ticket`, :meth:`SmartRouter.start_probes` calls the candidates alongside, the caller calls
``ticket.route``, then :meth:`SmartRouter.finish` records it (or :meth:`SmartRouter.fall_back`
records a candidate's failure and re-routes to the reference). Each step has a sync and an async
twin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from ..cache import AnswerCache
from ..cache.answer_cache import MISSES as CACHE_MISSES
from ..errors import StoreError
from ..policy import Decision, Policy, policy_for
from ..policy import keys as K
from ..policy.certificate import Certificate
from ..stores import Store, open_store
from ..task.answer import Answer
from ..task.config import SmartConfig
from .batch_serving import BatchServing, no_running_loop
from .cache_serving import CacheServing, answer_cache
from .cooldown import Cooldown
from .decision_order import DecisionOrder
from .drivers import (
    AsyncPerformer,
    Calls,
    Performer,
    Streamed,
    arun_flow,
    astream_flow,
    run_flow,
    stream_flow,
)
from .flow import serve_flow
from .increments import fell_back, served, spent_before_failing
from .ledger import Ledger
from .probe_recording import ProbeRecording
from .probe_run import AsyncProbeRun, ProbeRun
from .routes import RouteAnswer, RouteTable
from .scorer_training import ScorerTraining
from .ticket import Routed, Ticket

__all__ = [
    "AsyncProbeRun",
    "Endpoint",
    "ProbeRun",
    "Routed",
    "SmartRouter",
    "Ticket",
    "record_config",
]

Endpoint = Callable[[Any], Awaitable[Answer]]

_log = logging.getLogger("smart_core")


def record_config(store: Store, task: str, config: SmartConfig) -> None:
    """Leave ``config`` in ``store`` so ``smart report`` can rebuild ``task``'s bounds (a config
    whose comparator or prices cannot be serialised leaves the counters only). StoreError if
    the store is unreachable."""
    try:
        raw = config.model_dump_json()
    except Exception:
        return
    if store.get_meta(task, "config") != raw:
        store.set_meta(task, "config", raw)


class SmartRouter(ProbeRecording, CacheServing, BatchServing):
    """Routes requests for one or more tasks under a :class:`SmartConfig`.

    ``endpoints`` maps every model name in the config to its endpoint (needed by :meth:`arun`;
    adapters that call models themselves may omit it). ``store`` overrides the config's store URL
    (pass a :class:`~smart_core.stores.Store` to share one). ``seed`` makes the route draws
    reproducible. With ``wait_for_probes=False`` (the default) a probe returns as soon as the
    reference answers and the candidates finish in the background; batch runners set it to True
    so every probe is recorded before the next decision. ``embedder`` (a
    :class:`~smart_core.cache.Embedder`) embeds requests for ``cache="semantic"`` (default: the
    offline hashed n-gram embedder).
    """

    def __init__(
        self,
        config: SmartConfig,
        endpoints: Mapping[str, Endpoint] | None = None,
        *,
        store: Store | str | None = None,
        seed: int | None = None,
        wait_for_probes: bool = False,
        max_background_probes: int = 256,
        clock: Callable[[], float] = time.monotonic,
        embedder: Any = None,
    ) -> None:
        if endpoints is not None:
            missing = [m for m in config.model_names() if m not in endpoints]
            if missing:
                raise ValueError(
                    f"endpoints: no endpoint for {missing}; pass one async callable per model "
                    f"name in the config ({config.model_names()})"
                )
        self.config = config
        self.endpoints = dict(endpoints or {})
        self.store = open_store(store if store is not None else config.store)
        self.rng = random.Random(seed)
        self.wait_for_probes = wait_for_probes
        self.max_background_probes = max_background_probes
        self._policies: dict[str, Policy] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._threaded: set[ProbeRun] = set()
        self._threaded_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._warned: set[tuple[str, str]] = set()
        self._cooldown = Cooldown(config.cooldown_after, config.cooldown_seconds, clock)
        self._outage = False  # the store was unreachable at the last try
        #: The routes every task of this config may take, by name.
        self.routes = RouteTable.of_config(config)
        #: Fits the config's learned cascades on this router's early probes (online mode); false
        #: when the config declares none.
        self.training = ScorerTraining(config, self.store)
        #: The answer cache (``config.cache``), kept in the store beside the counters.
        self.cache: AnswerCache | None = answer_cache(config, self.store, embedder)
        #: Orders this process's decisions so the bounds may read the probes settled in that
        #: order (:mod:`smart_core.engine.decision_order`); ``None`` on stores whose async calls
        #: give up the event loop.
        self._order = DecisionOrder(clock) if self.store.async_inline else None

    # -- policy and state ----------------------------------------------------------------------

    def policy(self, task: str | None = None) -> Policy:
        """The policy of ``task`` (default: the config's task)."""
        name = task or self.config.task
        policy = self._policies.get(name)
        if policy is None:
            config = self.training.serving_config(name)
            for route in RouteTable.of_config(config) if config is not self.config else ():
                self.routes.open(route)  # its learned cascades, frozen
            policy = self._policies[name] = policy_for(config, task=name)
            if self.training and self.training.serving_config(name) is not config:
                self._policies.pop(name, None)  # frozen meanwhile: the next call builds anew
            self._record_config(name)
        return policy

    def _record_config(self, task: str) -> None:
        try:
            record_config(self.store, task, self.config)
        except StoreError:  # unreachable now: tried again by the next policy() of the task
            self._policies.pop(task, None)

    def decide(self, task: str | None = None, *, request_id: str | None = None) -> Decision:
        """Decide how to serve the next request of ``task`` and reserve it in the store.

        With a ``request_id`` the reservation is idempotent: deciding again for the same id
        does not count the request twice.
        """
        policy = self.policy(task)
        if self._order is None:
            return self._decide(policy, request_id)
        with self._order.lock:
            return self._decide(policy, request_id)

    def _decide(self, policy: Policy, request_id: str | None) -> Decision:
        task = policy.task
        decision = policy.decide(self._read_state(task), self.rng)
        if not self.store.add(task, decision.increments, event_id=_reservation(request_id)):
            return decision  # reserved by an earlier call with this request_id
        if self._order is not None:
            self._order.decided(task, request_id, decision.increments)
        if not policy.spends_budget(decision):
            return self._cool(policy, decision, request_id)
        checked = policy.confirm(self._read_state(task), decision)
        if checked is not decision:
            self.store.add(task, checked.increments, event_id=_rerouting(request_id))
        return self._cool(policy, checked, request_id)

    def _read_state(self, task: str) -> Any:
        """``task``'s counters, as the settled prefix sees them when decisions are ordered."""
        counters = self.store.read(task)
        return counters if self._order is None else self._order.state(task, counters)

    async def adecide(self, task: str | None = None, *, request_id: str | None = None) -> Decision:
        if self._order is not None:  # the store's async calls run inline: the same steps
            return self.decide(task, request_id=request_id)
        policy = self.policy(task)
        decision = policy.decide(await self.store.aread(policy.task), self.rng)
        reservation = _reservation(request_id)
        if not await self.store.aadd(policy.task, decision.increments, event_id=reservation):
            return decision
        if policy.spends_budget(decision):
            checked = policy.confirm(await self.store.aread(policy.task), decision)
            if checked is not decision:
                event = _rerouting(request_id)
                await self.store.aadd(policy.task, checked.increments, event_id=event)
            decision = checked
        cooled = self._cooled(policy, decision)
        if cooled is not decision:
            event = _cooling(request_id)
            await self.store.aadd(policy.task, cooled.increments, event_id=event)
        return cooled

    def _cool(self, policy: Policy, decision: Decision, request_id: str | None) -> Decision:
        cooled = self._cooled(policy, decision)
        if cooled is not decision:
            self.store.add(policy.task, cooled.increments, event_id=_cooling(request_id))
        return cooled

    def _cooled(self, policy: Policy, decision: Decision) -> Decision:
        """``decision`` moved to the reference if its candidate is cooling down after failing
        several times in a row (:mod:`smart_core.engine.cooldown`), else ``decision`` itself."""
        route = decision.route
        if route == policy.reference or not self._cooldown.cooling((policy.task, route)):
            return decision
        moved = policy.to_reference(decision)
        moved.increments[K.cooled(route)] = 1.0
        return moved

    def ledger(self, task: str | None = None) -> Ledger:
        """Spend, savings and the policy in force for ``task``, from the shared store."""
        policy = self.policy(task)
        return Ledger.from_counters(self.store.read(policy.task), policy)

    def cost_of(self, answer: Answer) -> float:
        """USD for one answer: its own ``cost`` if set, else its usage at the model's price."""
        return self.config.cost_of(answer)

    # -- serving, step by step ------------------------------------------------------------------

    def begin(self, task: str | None = None, *, request_id: str | None = None) -> Ticket:
        """Decide and reserve one request; the caller then calls ``ticket.route``.

        While the store is unreachable the request goes to the reference, unrecorded: its
        answer agrees with the reference's by definition, so the guarantee is untouched, and
        the counters are never half-updated (see :meth:`_unrecorded`).
        """
        self._check_order(task)
        request_id = request_id or uuid.uuid4().hex
        try:
            decision = self.decide(task, request_id=request_id)
        except StoreError as exc:
            return self._unrecorded(task, request_id, exc)
        self._store_back()
        return Ticket(request_id, decision, decision.route)

    async def abegin(self, task: str | None = None, *, request_id: str | None = None) -> Ticket:
        self._check_order(task)
        request_id = request_id or uuid.uuid4().hex
        try:
            decision = await self.adecide(task, request_id=request_id)
        except StoreError as exc:
            return self._unrecorded(task, request_id, exc)
        self._store_back()
        return Ticket(request_id, decision, decision.route)

    def _unrecorded(self, task: str | None, request_id: str, error: StoreError) -> Ticket:
        """A ticket to the reference that nothing records (the store is unreachable)."""
        policy = self.policy(task)  # built without the store (its config is recorded later)
        self._warn_outage(policy.task, error)
        ref = policy.reference
        cert = Certificate.of_reference(
            policy.task,
            ref,
            probe=False,
            epsilon=policy.epsilon,
            delta=policy.delta,
            method=policy.method,
            mode=policy.mode,
            effective_epsilon=policy.epsilon,
        )
        decision = Decision(ref, False, (), False, cert, {})
        return Ticket(request_id, decision, ref, recorded=False)

    def _warn_outage(self, task: str, error: StoreError) -> None:
        """Warn once per outage (every request of an outage would otherwise log the same)."""
        if self._outage:
            return
        self._outage = True
        _log.warning(
            "task %r: the store is unreachable (%s); requests go to the reference, unrecorded, "
            "until it is back",
            task,
            error,
        )

    def _store_back(self) -> None:
        if self._outage:
            self._outage = False
            _log.warning("the store is reachable again; SMART routes and records as before")

    def finish(self, ticket: Ticket, answer: Answer, *, cache_miss: bool = False) -> Routed:
        """Record the answer the user got from ``ticket.route`` and return it with its cost
        (``cache_miss``: the answer cache held nothing for it)."""
        self._cooldown.succeeded((ticket.task, ticket.route))
        answer, cost, inc = self._finishing(ticket, answer)
        if cache_miss:
            inc[CACHE_MISSES] = 1.0
        if ticket.recorded:
            try:
                self.store.add(ticket.task, inc, event_id=ticket.request_id)
            except StoreError as exc:  # the answer exists: the user gets it all the same
                self._warn_outage(ticket.task, exc)
        return _routed(ticket, answer, cost)

    async def afinish(self, ticket: Ticket, answer: Answer, *, cache_miss: bool = False) -> Routed:
        self._cooldown.succeeded((ticket.task, ticket.route))
        answer, cost, inc = self._finishing(ticket, answer)
        if cache_miss:
            inc[CACHE_MISSES] = 1.0
        if ticket.recorded:
            try:
                await self.store.aadd(ticket.task, inc, event_id=ticket.request_id)
            except StoreError as exc:
                self._warn_outage(ticket.task, exc)
        return _routed(ticket, answer, cost)

    def fall_back(self, ticket: Ticket, error: BaseException | None = None) -> Ticket:
        """Record that the routed candidate failed and re-route the request to the reference.

        The failure is not a disagreement: rate limits and timeouts say nothing about answer
        quality. A failing reference has nothing to fall back to: re-raise its error instead.
        """
        inc = self._fallback_increments(ticket, error)
        try:
            self.store.add(ticket.task, inc, event_id=f"{ticket.request_id}:fallback")
        except StoreError as exc:  # the reference still answers
            self._warn_outage(ticket.task, exc)
        self._count_failure(ticket, error)
        return replace(ticket, route=self.config.reference.name, fallback=True)

    async def afall_back(self, ticket: Ticket, error: BaseException | None = None) -> Ticket:
        inc = self._fallback_increments(ticket, error)
        try:
            await self.store.aadd(ticket.task, inc, event_id=f"{ticket.request_id}:fallback")
        except StoreError as exc:
            self._warn_outage(ticket.task, exc)
        self._count_failure(ticket, error)
        return replace(ticket, route=self.config.reference.name, fallback=True)

    def _count_failure(self, ticket: Ticket, error: BaseException | None) -> None:
        if self._cooldown.failed((ticket.task, ticket.route)):
            _log.warning(
                "task %r: %s failed %d times in a row (last: %s); its requests go to the "
                "reference for the next %g s, then it is tried again",
                ticket.task,
                ticket.route,
                self._cooldown.after,
                type(error).__name__ if error is not None else "error",
                self._cooldown.seconds,
            )

    def record_failure(self, ticket: Ticket, error: BaseException | None = None) -> None:
        """Record that ``ticket.route`` failed with nothing to fall back to.

        For a stream that broke after the user had received part of it: the failure is counted
        (never as a disagreement) and the request stays reserved, with no answer recorded.
        """
        self.store.add(
            ticket.task, {K.failures(ticket.route): 1.0}, event_id=f"{ticket.request_id}:failure"
        )

    async def arecord_failure(self, ticket: Ticket, error: BaseException | None = None) -> None:
        await self.store.aadd(
            ticket.task, {K.failures(ticket.route): 1.0}, event_id=f"{ticket.request_id}:failure"
        )

    # -- serving through endpoints ---------------------------------------------------------------

    def serve(
        self, calls: Calls, *, task: str | None = None, request_id: str | None = None
    ) -> Routed:
        """Serve one request through the serving flow, calling models with ``calls``' sync
        callables (see :class:`~smart_core.engine.drivers.Calls`)."""
        flow = serve_flow(self.routes, task, request_id)
        return run_flow(flow, Performer(self, calls))

    async def aserve(
        self, calls: Calls, *, task: str | None = None, request_id: str | None = None
    ) -> Routed:
        """Async twin of :meth:`serve` (``calls`` holds async callables)."""
        flow = serve_flow(self.routes, task, request_id)
        return await arun_flow(flow, AsyncPerformer(self, calls))

    def serve_stream(
        self, calls: Calls, *, task: str | None = None, request_id: str | None = None
    ) -> Iterator[Streamed]:
        """Serve one request, relaying the answering model's chunks as they come; the last
        :class:`~smart_core.engine.drivers.Streamed` carries the ``Routed``."""
        return stream_flow(serve_flow(self.routes, task, request_id), Performer(self, calls))

    def aserve_stream(
        self, calls: Calls, *, task: str | None = None, request_id: str | None = None
    ) -> AsyncIterator[Streamed]:
        """Async twin of :meth:`serve_stream`."""
        flow = serve_flow(self.routes, task, request_id)
        return astream_flow(flow, AsyncPerformer(self, calls))

    async def arun(
        self,
        request: Any,
        *,
        task: str | None = None,
        request_id: str | None = None,
        tenant: str | None = None,
        user: str | None = None,
    ) -> Routed:
        """Serve one request; raises the reference's own exception if the reference fails.

        With ``config.cache`` on, ``request`` (if it has a JSON form) keys the answer cache
        within ``tenant`` (and ``user`` for per-user answers); with ``cache="semantic"`` a
        request that is a string is also compared by similarity with earlier ones."""
        if not self.endpoints:
            raise RuntimeError(
                "SmartRouter.arun() needs endpoints; pass `endpoints={model: async_callable}` "
                "or drive begin()/finish() yourself"
            )

        def call(model: str) -> Awaitable[Answer]:
            return self._acall(model, request)

        text = request if isinstance(request, str) else None
        cache = self.request_cache(request, tenant=tenant, user=user, text=text)
        calls = Calls(call, call, cache=cache, request=request)
        return await self.aserve(calls, task=task, request_id=request_id)

    def run(
        self,
        request: Any,
        *,
        task: str | None = None,
        request_id: str | None = None,
        tenant: str | None = None,
        user: str | None = None,
    ) -> Routed:
        """Synchronous twin of :meth:`arun`; waits for probes; not for use in a running loop."""
        no_running_loop("run", "arun")
        previous, self.wait_for_probes = self.wait_for_probes, True
        try:
            served = self.arun(request, task=task, request_id=request_id, tenant=tenant, user=user)
            return asyncio.run(served)
        finally:
            self.wait_for_probes = previous

    async def _acall(self, model: str, request: Any) -> Answer:
        answer = await self.endpoints[model](request)
        if not answer.model:
            answer.model = model
        return answer

    # -- increments ------------------------------------------------------------------------------

    def _finishing(self, ticket: Ticket, answer: Answer) -> tuple[Answer, float, dict[str, float]]:
        if not answer.model:
            answer.model = ticket.route
        cost, inc = served(ticket.route, self.config.reference.name, answer, self.cost_of)
        return answer, cost, inc

    def _fallback_increments(
        self, ticket: Ticket, error: BaseException | None = None
    ) -> dict[str, float]:
        inc = fell_back(ticket.route, self.config.reference.name)
        for key, value in spent_before_failing(ticket.route, error, self.cost_of).items():
            inc[key] = inc.get(key, 0.0) + value
        return inc

    def _warn_once(self, task: str, what: str, message: str) -> None:
        """Log ``message`` at WARNING the first time ``what`` happens for ``task``."""
        key = (task, what)
        if key not in self._warned:
            self._warned.add(key)
            _log.warning(message)

    # -- lifecycle -----------------------------------------------------------------------------

    async def aclose(self, *, wait: bool = True) -> None:
        """Finish (or, with ``wait=False``, cancel) background probes, then close the store."""
        if wait:
            await self.aflush()
        else:
            for t in list(self._background):
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._background, return_exceptions=True)
        self._close()

    def close(self, *, wait: bool = True) -> None:
        """Finish threaded probes (unless ``wait=False``), then close the store."""
        if wait:
            self.flush()
        self._close()

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.store.close()

    def __enter__(self) -> SmartRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SmartRouter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _routed(ticket: Ticket, answer: Answer, cost: float) -> Routed:
    cert = ticket.certificate
    if isinstance(answer, RouteAnswer):  # a cascade: which step answered, with what score
        cert = replace(cert, step=answer.step_name, score=answer.score)
    return Routed(
        answer,
        ticket.route,
        ticket.probe,
        cost,
        cert,
        ticket.request_id,
        ticket.fallback,
    )


def _reservation(request_id: str | None) -> str | None:
    return f"{request_id}:decide" if request_id else None


def _rerouting(request_id: str | None) -> str | None:
    return f"{request_id}:reroute" if request_id else None


def _cooling(request_id: str | None) -> str | None:
    return f"{request_id}:cooldown" if request_id else None
