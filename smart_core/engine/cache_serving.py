"""The router's answer-cache steps (a mixin of :class:`~smart_core.engine.router.SmartRouter`):
a request's view of the cache for its ``Calls``, and recording a request answered from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..cache import AnswerCache, AnswerCodec, CacheHit, RequestCache, hit_increments
from ..errors import StoreError
from ..stores import Store
from ..task.config import SmartConfig
from .ticket import Routed, Ticket

if TYPE_CHECKING:
    from .router import SmartRouter

__all__ = ["CacheServing", "answer_cache"]


def answer_cache(config: SmartConfig, store: Store) -> AnswerCache | None:
    """The answer cache ``config`` asks for, kept in ``store``; ``None`` when it is off."""
    if config.cache == "off":
        return None
    return AnswerCache(
        store,
        reference=config.reference.name,
        answers=config.cache_answers,
        tenant=config.tenant,
        ttl_seconds=config.cache_ttl_seconds,
        max_entries=config.cache_max_entries,
    )


class CacheServing:
    """``request_cache``, ``serve_hit`` and ``aserve_hit`` of the router."""

    cache: AnswerCache | None

    def request_cache(
        self,
        request: Any,
        *,
        tenant: str | None = None,
        user: str | None = None,
        codec: AnswerCodec | None = None,
    ) -> RequestCache | None:
        """The answer cache as one request sees it, for ``Calls(cache=...)``: ``request`` is
        everything that shapes the answer (messages, tools, response format, parameters) as
        JSON values; ``tenant`` and ``user`` its namespace (default: the config's tenant).
        ``None`` when the cache is off or the request cannot use it."""
        if self.cache is None:
            return None
        return self.cache.for_request(request, tenant=tenant, user=user, codec=codec)

    def serve_hit(self: SmartRouter, ticket: Ticket, hit: CacheHit) -> Routed:
        """Record that ``ticket`` was answered from the cache (``ticket.route`` is the hit's)."""
        if ticket.recorded:
            try:
                self.store.add(
                    ticket.task, self._hit_increments(ticket, hit), event_id=ticket.request_id
                )
            except StoreError as exc:
                self._warn_outage(ticket.task, exc)
        return _routed(ticket, hit.answer, 0.0)

    async def aserve_hit(self: SmartRouter, ticket: Ticket, hit: CacheHit) -> Routed:
        if ticket.recorded:
            inc = self._hit_increments(ticket, hit)
            try:
                await self.store.aadd(ticket.task, inc, event_id=ticket.request_id)
            except StoreError as exc:
                self._warn_outage(ticket.task, exc)
        return _routed(ticket, hit.answer, 0.0)

    @staticmethod
    def _hit_increments(ticket: Ticket, hit: CacheHit) -> dict[str, float]:
        # decision.route: what the mix drew (the reference on a probe), i.e. what the hit saved
        return hit_increments(ticket.decision.route, hit.cost)


def _routed(ticket: Ticket, answer: Any, cost: float) -> Routed:
    return Routed(
        answer,
        ticket.route,
        ticket.probe,
        cost,
        ticket.certificate,
        ticket.request_id,
        ticket.fallback,
    )
