"""The router's answer-cache steps (a mixin of :class:`~smart_core.engine.router.SmartRouter`):
a request's view of the cache for its ``Calls``, and recording a request answered from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..cache import EXACT_ROUTE, AnswerCache, AnswerCodec, CacheHit, RequestCache, hit_increments
from ..cache.embedding import Embedder, HashedNgramEmbedder
from ..errors import StoreError
from ..policy import keys as K
from ..stores import Store
from ..task.config import SmartConfig
from .ticket import Routed, Ticket

if TYPE_CHECKING:
    from .router import SmartRouter

__all__ = ["CacheServing", "answer_cache"]


def answer_cache(
    config: SmartConfig, store: Store, embedder: Embedder | None = None
) -> AnswerCache | None:
    """The answer cache ``config`` asks for, kept in ``store``; ``None`` when it is off. A
    semantic cache embeds with ``embedder`` (default: the offline hashed n-gram embedder)."""
    if config.cache == "off":
        return None
    if config.cache == "semantic" and embedder is None:
        embedder = HashedNgramEmbedder()
    return AnswerCache(
        store,
        reference=config.reference.name,
        answers=config.cache_answers,
        tenant=config.tenant,
        ttl_seconds=config.cache_ttl_seconds,
        max_entries=config.cache_max_entries,
        embedder=embedder if config.cache == "semantic" else None,
        grow_index=config.batch_size is None,
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
        text: str | None = None,
        context: Any = None,
    ) -> RequestCache | None:
        """The answer cache as one request sees it, for ``Calls(cache=...)``: ``request`` is
        everything that shapes the answer (messages, tools, response format, parameters) as
        JSON values; ``tenant`` and ``user`` its namespace (default: the config's tenant).
        For ``cache="semantic"``, ``text`` is what is compared by similarity (the last user
        message) and ``context`` the rest of the request, which must match exactly.
        ``None`` when the cache is off or the request cannot use it."""
        if self.cache is None:
            return None
        return self.cache.for_request(
            request, tenant=tenant, user=user, codec=codec, text=text, context=context
        )

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

    def _hit_increments(self: SmartRouter, ticket: Ticket, hit: CacheHit) -> dict[str, float]:
        if hit.route == EXACT_ROUTE:
            # decision.route: what the mix drew (the reference on a probe), what the hit saved
            return hit_increments(ticket.decision.route, hit.cost)
        # A semantic route's hit: the route answered at no cost (its mean cost is learned from
        # hits and misses alike); without the cache the reference would have been called.
        inc = hit_increments(self.config.reference.name, hit.cost)
        inc[K.calls(hit.route)] = 1.0
        inc[K.call_cost(hit.route)] = 0.0
        return inc


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
