"""The engine: an async-first router over plain async model endpoints.

An *endpoint* is any ``async def endpoint(request) -> Answer``. The router asks the policy for a
decision, reserves it in the store, calls the routed model (or, for a probe, the reference and
the live candidates concurrently), returns the answer with its certificate, and records costs and
agreements. The framework adapters and the command line all drive this one class.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import _keys as K
from ._answer import Answer
from ._certificate import Certificate
from ._config import SmartConfig
from ._ledger import Ledger
from ._policy import Decision, MixPolicy, probe_outcome
from .stores import Store, open_store

__all__ = ["Endpoint", "Routed", "SmartRouter"]

Endpoint = Callable[[Any], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Routed:
    """The answer the user gets, who gave it, what the whole request cost, and the certificate."""

    answer: Answer
    route: str
    probe: bool
    cost: float
    certificate: Certificate
    request_id: str


class SmartRouter:
    """Routes requests for one or more tasks under a :class:`SmartConfig`.

    ``endpoints`` maps every model name in the config to its endpoint. ``store`` overrides the
    config's store URL (pass a :class:`~smart_core.stores.Store` to share one). ``seed`` makes the
    route draws reproducible. With ``wait_for_probes=False`` (the default) a probe returns as soon
    as the reference answers and the candidates finish in the background; batch runners set it to
    True so every probe is recorded before the next decision.
    """

    def __init__(
        self,
        config: SmartConfig,
        endpoints: Mapping[str, Endpoint],
        *,
        store: Store | str | None = None,
        seed: int | None = None,
        wait_for_probes: bool = False,
        max_background_probes: int = 256,
    ) -> None:
        missing = [m for m in config.model_names() if m not in endpoints]
        if missing:
            raise ValueError(
                f"endpoints: no endpoint for {missing}; pass one async callable per model name "
                f"in the config ({config.model_names()})"
            )
        self.config = config
        self.endpoints = dict(endpoints)
        self.store = open_store(store if store is not None else config.store)
        self.rng = random.Random(seed)
        self.wait_for_probes = wait_for_probes
        self.max_background_probes = max_background_probes
        self._policies: dict[str, MixPolicy] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._table = config.price_table

    # -- policy and state ----------------------------------------------------------------------

    def policy(self, task: str | None = None) -> MixPolicy:
        """The policy of ``task`` (default: the config's task)."""
        name = task or self.config.task
        policy = self._policies.get(name)
        if policy is None:
            policy = self._policies[name] = MixPolicy.from_config(self.config, task=name)
        return policy

    def decide(self, task: str | None = None, *, request_id: str | None = None) -> Decision:
        """Decide how to serve the next request of ``task`` and reserve it in the store.

        With a ``request_id`` the reservation is idempotent: deciding again for the same id
        does not count the request twice.
        """
        policy = self.policy(task)
        decision = policy.decide(self.store.read(policy.task), self.rng)
        self.store.add(policy.task, decision.increments, event_id=_reservation(request_id))
        return decision

    async def adecide(self, task: str | None = None, *, request_id: str | None = None) -> Decision:
        policy = self.policy(task)
        decision = policy.decide(await self.store.aread(policy.task), self.rng)
        await self.store.aadd(policy.task, decision.increments, event_id=_reservation(request_id))
        return decision

    def ledger(self, task: str | None = None) -> Ledger:
        """Spend, savings and the policy in force for ``task``, from the shared store."""
        policy = self.policy(task)
        return Ledger.from_counters(self.store.read(policy.task), policy)

    def cost_of(self, answer: Answer) -> float:
        """USD for one answer: its own ``cost`` if set, else its usage at the model's price."""
        if answer.cost is not None:
            return float(answer.cost)
        return self.config.spec(answer.model).resolve_price(self._table).cost(answer.usage)

    # -- serving -------------------------------------------------------------------------------

    async def arun(
        self, request: Any, *, task: str | None = None, request_id: str | None = None
    ) -> Routed:
        """Serve one request; raises the reference's own exception if the reference fails."""
        request_id = request_id or uuid.uuid4().hex
        decision = await self.adecide(task, request_id=request_id)
        if decision.probe:
            return await self._aprobe(request, decision, request_id)
        if decision.route == self.config.reference.name:
            answer = await self._acall(decision.route, request)
            cost = self.cost_of(answer)
            await self._arecord(decision, request_id, {decision.route: (answer, cost)})
            return Routed(answer, decision.route, False, cost, decision.certificate, request_id)
        return await self._aroute(request, decision, request_id)

    def run(
        self, request: Any, *, task: str | None = None, request_id: str | None = None
    ) -> Routed:
        """Synchronous twin of :meth:`arun`; waits for probes; not for use in a running loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "SmartRouter.run() was called inside a running event loop; "
                "use `await router.arun(...)` there"
            )
        previous, self.wait_for_probes = self.wait_for_probes, True
        try:
            return asyncio.run(self.arun(request, task=task, request_id=request_id))
        finally:
            self.wait_for_probes = previous

    async def _acall(self, model: str, request: Any) -> Answer:
        answer = await self.endpoints[model](request)
        if not answer.model:
            answer.model = model
        return answer

    async def _aroute(self, request: Any, decision: Decision, request_id: str) -> Routed:
        route = decision.route
        try:
            answer = await self._acall(route, request)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The user still gets an answer: the reference's. The failure is recorded first (even
            # if the reference fails too); it is not a disagreement (rate limits and timeouts say
            # nothing about answer quality).
            await self.store.aadd(
                decision.certificate.task,
                {K.failures(route): 1.0, K.fallbacks(route): 1.0},
                event_id=f"{request_id}:fallback",
            )
            ref = self.config.reference.name
            answer = await self._acall(ref, request)
            cost = self.cost_of(answer)
            await self._arecord(decision, request_id, {ref: (answer, cost)})
            cert = replace(decision.certificate, route=ref)
            return Routed(answer, ref, False, cost, cert, request_id)
        cost = self.cost_of(answer)
        await self._arecord(decision, request_id, {route: (answer, cost)})
        return Routed(answer, route, False, cost, decision.certificate, request_id)

    async def _aprobe(self, request: Any, decision: Decision, request_id: str) -> Routed:
        ref = self.config.reference.name
        tasks = {c: asyncio.ensure_future(self._acall(c, request)) for c in decision.probe_models}
        try:
            answer = await self._acall(ref, request)
        except BaseException:
            for t in tasks.values():
                t.cancel()
            raise
        cost = self.cost_of(answer)
        await self._arecord(decision, request_id, {ref: (answer, cost)})
        if self.wait_for_probes:
            await self._afinish_probe(decision, request_id, answer, tasks)
        else:
            await self._limit_background()
            bg = asyncio.ensure_future(self._afinish_probe(decision, request_id, answer, tasks))
            self._background.add(bg)
            bg.add_done_callback(self._background.discard)
        return Routed(answer, ref, True, cost, decision.certificate, request_id)

    async def _limit_background(self) -> None:
        while len(self._background) >= self.max_background_probes:
            await asyncio.wait(self._background, return_when=asyncio.FIRST_COMPLETED)

    async def _afinish_probe(
        self,
        decision: Decision,
        request_id: str,
        reference: Answer,
        tasks: Mapping[str, asyncio.Future[Answer]],
    ) -> None:
        """Compare every candidate that answered with the reference and record it, once."""
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        comparator = self.config.comparator
        inc: dict[str, float] = {}
        for c, task in tasks.items():
            if task.cancelled() or task.exception() is not None:
                inc[K.failures(c)] = inc.get(K.failures(c), 0.0) + 1.0
                continue
            answer = task.result()
            cost = self.cost_of(answer)
            _add_call(inc, c, cost)
            inc[K.SPENT_PROBE_CANDIDATES] = inc.get(K.SPENT_PROBE_CANDIDATES, 0.0) + cost
            try:
                agreed = bool(comparator(answer, reference))
            except Exception:  # a comparator crash must not lose the probe's other outcomes
                inc[K.failures(c)] = inc.get(K.failures(c), 0.0) + 1.0
                continue
            inc.update(probe_outcome(decision, c, agreed))
        task_name = decision.certificate.task
        await self.store.aadd(task_name, inc, event_id=f"{request_id}:probe")

    async def _arecord(
        self,
        decision: Decision,
        request_id: str,
        answers: Mapping[str, tuple[Answer, float]],
        extra: Mapping[str, float] | None = None,
    ) -> None:
        inc: dict[str, float] = dict(extra or {})
        for model, (_, cost) in answers.items():
            _add_call(inc, model, cost)
            if model == self.config.reference.name:
                inc[K.REF_N] = inc.get(K.REF_N, 0.0) + 1.0
                inc[K.REF_COST] = inc.get(K.REF_COST, 0.0) + cost
                inc[K.REF_COST_SQ] = inc.get(K.REF_COST_SQ, 0.0) + cost * cost
        await self.store.aadd(decision.certificate.task, inc, event_id=request_id)

    # -- lifecycle -----------------------------------------------------------------------------

    async def aflush(self) -> None:
        """Wait until every background probe has been recorded."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def aclose(self, *, wait: bool = True) -> None:
        """Finish (or, with ``wait=False``, cancel) background probes, then close the store."""
        if wait:
            await self.aflush()
        else:
            for t in list(self._background):
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._background, return_exceptions=True)
        self.store.close()

    def close(self) -> None:
        self.store.close()

    async def __aenter__(self) -> SmartRouter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _reservation(request_id: str | None) -> str | None:
    return f"{request_id}:decide" if request_id else None


def _add_call(inc: dict[str, float], model: str, cost: float) -> None:
    inc[K.calls(model)] = inc.get(K.calls(model), 0.0) + 1.0
    inc[K.call_cost(model)] = inc.get(K.call_cost(model), 0.0) + cost
    inc[K.SPENT] = inc.get(K.SPENT, 0.0) + cost
