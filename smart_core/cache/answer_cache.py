"""The exact answer cache: the reference's answers to identical requests, kept in the store.

An entry is written only when the reference itself answered (routed to it, probed, or fallen
back to), under a key that is the hash of the whole canonical request (messages with the system
message, tools, response format, the parameters that change answers) and of the reference's
name, within the scope of the tenant (and the user, when the task's answers are per user).
A hit is therefore the reference's own answer to this very request: serving it instead of any
call can only lower the share of answers that differ from the reference's (docs/cache.md,
docs/guarantee.md "The answer cache").

With an embedder the cache also finds, for a request it has no entry for, the nearest earlier
request in the same tenant (and user) asked in the same context (:mod:`.semantic_index`): a
*semantic* hit. That is an answer to another request, so it is never served as the reference's:
it is what the routes ``cache:semantic@s`` serve, and what a probe compares with the reference's
answer to certify them (smart_core.engine.semantic_route; docs/guarantee.md).

A store that fails during a lookup or a write costs the request nothing but the cache: the
lookup is a miss and the write is skipped, with one warning per outage. So does an embedder
that fails: the request is looked up exactly, and not added to the semantic index.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import StoreError
from ..policy import keys as K
from ..stores import Store
from ..task.answer import Answer
from ..task.config import SEMANTIC_HIT_ROUTE
from .embedding import Embedder, aembed
from .entry import CachedAnswer
from .request_key import request_key, scope_of
from .semantic_index import SemanticIndex

__all__ = [
    "EXACT_ROUTE",
    "SEMANTIC_HIT_ROUTE",
    "AnswerCache",
    "AnswerCodec",
    "CacheHit",
    "CacheLookup",
    "PlainCodec",
    "RequestCache",
    "hit_increments",
]

_log = logging.getLogger("smart_core")

#: The route a request served by an exact hit shows (``routed.route``, the certificate).
EXACT_ROUTE = "cache:exact"

#: Counters (beside the task's routing counters; the policy reads none of them).
HITS = "cache.hits"
MISSES = "cache.misses"
#: What the served answers had cost the reference when it produced them.
HIT_REFERENCE_COST = "cache.hit_ref_cost"


def hits_for(route: str) -> str:
    """Hits on requests the policy had drawn for ``route`` (what each would have cost)."""
    return f"cache.hit:{route}"


def hit_increments(drawn: str, reference_cost: float) -> dict[str, float]:
    """A request answered from the cache: answered, at no cost, instead of ``drawn``."""
    return {K.ANSWERED: 1.0, HITS: 1.0, hits_for(drawn): 1.0, HIT_REFERENCE_COST: reference_cost}


@dataclass(frozen=True, slots=True)
class CacheHit:
    """One stored answer found for a request.

    ``route`` names what served it (``cache:exact``); a probe that also calls the reference
    could compare ``answer`` with the reference's and record it under that route, as it does
    for any route (how semantic hits, whose agreement is not given, are to be certified).
    """

    route: str
    answer: Answer
    #: USD the reference was paid for this answer when it was stored.
    cost: float
    stored_at: float
    similarity: float = 1.0


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """What the cache holds for one request: every hit, by route (empty: a miss)."""

    hits: tuple[CacheHit, ...] = ()

    @property
    def exact(self) -> CacheHit | None:
        """The reference's own answer to this very request, if stored."""
        return next((h for h in self.hits if h.route == EXACT_ROUTE), None)

    @property
    def nearest(self) -> CacheHit | None:
        """The stored answer to the closest earlier request of the same namespace, with its
        similarity (the exact entry itself, at 1.0, when there is one); ``None`` without an
        embedder or when nothing was found."""
        return next((h for h in self.hits if h.route == SEMANTIC_HIT_ROUTE), None)


class AnswerCodec(Protocol):
    """How an adapter keeps its framework's answers: ``encode`` the message as JSON-ready data
    (never the client or its keys), ``decode`` an entry into an :class:`Answer` whose ``raw`` is
    the framework's result, ``chunks`` a decoded answer as stream chunks."""

    def encode(self, answer: Answer) -> Any: ...

    def decode(self, cached: CachedAnswer) -> Answer: ...

    def chunks(self, answer: Answer) -> Iterable[Any]: ...


class PlainCodec:
    """For plain endpoints (``SmartRouter.arun``): the answer is all there is."""

    def encode(self, answer: Answer) -> Any:
        return None

    def decode(self, cached: CachedAnswer) -> Answer:
        return cached.answer

    def chunks(self, answer: Answer) -> Iterable[Any]:
        return [answer]


class AnswerCache:
    """A router's answer cache: the store it lives in and its limits.

    ``answers`` is ``shared`` (a tenant's users share entries) or ``per_user``; ``tenant`` the
    tenant of requests that name none; ``ttl_seconds`` how long an entry is served (``None``:
    until evicted); ``max_entries`` the entries kept per task (the soonest to expire go first).
    ``embedder`` (an :class:`~smart_core.cache.embedding.Embedder`) turns on semantic lookups.
    """

    def __init__(
        self,
        store: Store,
        *,
        reference: str,
        answers: str = "shared",
        tenant: str = "default",
        ttl_seconds: float | None = None,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
        embedder: Embedder | None = None,
        grow_index: bool = True,
    ) -> None:
        self.store = store
        self.reference = reference
        self.answers = answers
        self.tenant = tenant
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self.embedder = embedder
        #: The vectors of the requests whose answers are stored, per namespace (semantic only).
        self.index = SemanticIndex(max_entries) if embedder is not None else None
        #: False in batch mode: answers stored during a batch are not added to the semantic
        #: index, so each item's would-be semantic answer is fixed by what was there before the
        #: batch, whatever the batch's order (the finite-population bound needs fixed answers;
        #: docs/guarantee.md, "The answer cache"). Exact hits are unaffected.
        self.grow_index = grow_index
        #: When this cache (a batch, in batch mode) started.
        self.created_at = clock()
        self._failing = False
        self._embedding_failing = False

    def for_request(
        self,
        request: Any,
        *,
        tenant: str | None = None,
        user: str | None = None,
        codec: AnswerCodec | None = None,
        text: str | None = None,
        context: Any = None,
    ) -> RequestCache | None:
        """The cache as one request sees it; ``None`` if the request cannot use it (a per-user
        task with no user, or a request with no JSON form).

        For semantic lookups the adapter names the ``text`` compared by similarity (the last
        user message) and its ``context`` (everything else that shapes the answer, as JSON
        values: system message, earlier turns, tools, parameters), which must match exactly."""
        scope = scope_of(tenant or self.tenant, user, self.answers)
        if scope is None:
            return None
        try:
            key = request_key({"reference": self.reference, "request": request})
        except (TypeError, ValueError) as exc:
            _log.warning("answer cache: request not cached (%s)", exc)
            return None
        semantic = None
        if self.embedder is not None and isinstance(text, str) and text.strip():
            try:
                where = request_key({"reference": self.reference, "context": context})
            except (TypeError, ValueError) as exc:
                _log.warning("answer cache: no semantic lookup for this request (%s)", exc)
            else:
                semantic = (text, where)
        return RequestCache(self, scope, key, codec or PlainCodec(), semantic)

    def _expires_at(self, now: float) -> float:
        # No TTL: far enough ahead never to expire, still ordered by write time for eviction.
        return now + (self.ttl_seconds if self.ttl_seconds is not None else 1e10)

    def _failed(self, what: str, error: StoreError) -> None:
        if not self._failing:
            self._failing = True
            _log.warning("answer cache: %s failed (%s); serving without the cache", what, error)

    def _worked(self) -> None:
        self._failing = False

    def _embedding_failed(self, error: Exception) -> None:
        if not self._embedding_failing:
            self._embedding_failing = True
            _log.warning(
                "answer cache: the embedder failed (%s: %s); requests are looked up exactly "
                "until it works again",
                type(error).__name__,
                error,
            )

    def _embedded(self) -> None:
        self._embedding_failing = False


class RequestCache:
    """One request's view of the cache: its scope, its key and its adapter's codec, and for
    semantic lookups its text and the key of its context (``semantic``)."""

    def __init__(
        self,
        cache: AnswerCache,
        scope: str,
        key: str,
        codec: AnswerCodec,
        semantic: tuple[str, str] | None = None,
    ) -> None:
        self.cache = cache
        self.scope = scope
        self.key = key
        self.codec = codec
        self.semantic = semantic
        self._vector: Any = None  # the text's embedding, computed once per request

    def lookup(self, task: str) -> CacheLookup:
        cache = self.cache
        try:
            raw = cache.store.cache_get(task, self.scope, self.key, now=cache.clock())
        except StoreError as exc:
            cache._failed("a lookup", exc)
            return CacheLookup()
        cache._worked()
        exact = self._hit(raw, EXACT_ROUTE)
        if self.semantic is None or (exact is not None and self._exact_is_near(exact)):
            return self._lookup(exact, None)
        near = self._near(task, self._embed())
        if near is None:
            return self._lookup(exact, None)
        key, similarity = near
        try:
            raw = cache.store.cache_get(task, self.scope, key, now=cache.clock())
        except StoreError as exc:
            cache._failed("a lookup", exc)
            return self._lookup(exact, None)
        return self._lookup(exact, self._semantic_hit(task, key, raw, similarity))

    async def alookup(self, task: str) -> CacheLookup:
        cache = self.cache
        try:
            raw = await cache.store.acache_get(task, self.scope, self.key, now=cache.clock())
        except StoreError as exc:
            cache._failed("a lookup", exc)
            return CacheLookup()
        cache._worked()
        exact = self._hit(raw, EXACT_ROUTE)
        if self.semantic is None or (exact is not None and self._exact_is_near(exact)):
            return self._lookup(exact, None)
        near = self._near(task, await self._aembed())
        if near is None:
            return self._lookup(exact, None)
        key, similarity = near
        try:
            raw = await cache.store.acache_get(task, self.scope, key, now=cache.clock())
        except StoreError as exc:
            cache._failed("a lookup", exc)
            return self._lookup(exact, None)
        return self._lookup(exact, self._semantic_hit(task, key, raw, similarity))

    def _lookup(self, exact: CacheHit | None, near: CacheHit | None) -> CacheLookup:
        if exact is not None:
            # The request's own entry is its nearest one too: a semantic route serves it then
            # (in batch mode only if it was stored before the batch, see _exact_is_near).
            if self.semantic is not None and near is None and self._exact_is_near(exact):
                near = CacheHit(SEMANTIC_HIT_ROUTE, exact.answer, exact.cost, exact.stored_at)
            return CacheLookup(tuple(h for h in (exact, near) if h is not None))
        return CacheLookup(() if near is None else (near,))

    def _exact_is_near(self, exact: CacheHit) -> bool:
        """May the exact entry stand as the semantic routes' nearest hit? Always online; in
        batch mode (the index frozen) only if it predates the batch, so that an item's
        would-be semantic answer never depends on which items came before it."""
        return self.cache.grow_index or exact.stored_at < self.cache.created_at

    def _namespace(self, task: str) -> tuple[str, str, str]:
        assert self.semantic is not None
        return (task, self.scope, self.semantic[1])

    def _near(self, task: str, vector: Any) -> tuple[str, float] | None:
        index = self.cache.index
        if vector is None or index is None:
            return None
        return index.nearest(self._namespace(task), vector)

    def _semantic_hit(
        self, task: str, key: str, raw: str | None, similarity: float
    ) -> CacheHit | None:
        hit = self._hit(raw, SEMANTIC_HIT_ROUTE, min(similarity, 1.0))
        if hit is None and self.cache.index is not None:  # expired, evicted or unreadable
            self.cache.index.forget(self._namespace(task), key)
        return hit

    def _embed(self) -> Any:
        if self._vector is None and self.semantic is not None:
            embedder = self.cache.embedder
            assert embedder is not None
            try:
                self._vector = embedder.embed([self.semantic[0]])[0]
            except Exception as exc:
                self.cache._embedding_failed(exc)
                return None
            self.cache._embedded()
        return self._vector

    async def _aembed(self) -> Any:
        if self._vector is None and self.semantic is not None:
            embedder = self.cache.embedder
            assert embedder is not None
            try:
                self._vector = (await aembed(embedder, [self.semantic[0]]))[0]
            except Exception as exc:
                self.cache._embedding_failed(exc)
                return None
            self.cache._embedded()
        return self._vector

    def _hit(self, raw: str | None, route: str, similarity: float = 1.0) -> CacheHit | None:
        if raw is None:
            return None
        try:
            cached = CachedAnswer.loads(raw)
            answer = self.codec.decode(cached)
        except Exception as exc:  # an entry this version cannot read: a miss, rewritten later
            _log.warning("answer cache: unreadable entry ignored (%s)", exc)
            return None
        return CacheHit(route, answer, cached.cost, cached.stored_at, similarity)

    def _entry(self, answer: Answer, cost: float) -> tuple[str, float] | None:
        now = self.cache.clock()
        try:
            payload = self.codec.encode(answer)
            return CachedAnswer(answer, cost, now, payload).dumps(), now
        except (TypeError, ValueError) as exc:
            _log.warning("answer cache: answer not stored (%s)", exc)
            return None

    def remember(self, task: str, answer: Answer, cost: float) -> None:
        """Store the reference's ``answer`` to this request (it cost ``cost``)."""
        entry = self._entry(answer, cost)
        if entry is None:
            return
        cache, (value, now) = self.cache, entry
        try:
            cache.store.cache_put(
                task,
                self.scope,
                self.key,
                value,
                now=now,
                expires_at=cache._expires_at(now),
                max_entries=cache.max_entries,
            )
        except StoreError as exc:
            cache._failed("a write", exc)
            return
        self._index(task, self._embed())

    async def aremember(self, task: str, answer: Answer, cost: float) -> None:
        entry = self._entry(answer, cost)
        if entry is None:
            return
        cache, (value, now) = self.cache, entry
        try:
            await cache.store.acache_put(
                task,
                self.scope,
                self.key,
                value,
                now=now,
                expires_at=cache._expires_at(now),
                max_entries=cache.max_entries,
            )
        except StoreError as exc:
            cache._failed("a write", exc)
            return
        self._index(task, await self._aembed())

    def _index(self, task: str, vector: Any) -> None:
        if vector is not None and self.cache.index is not None and self.cache.grow_index:
            self.cache.index.add(self._namespace(task), self.key, vector)

    def chunks(self, answer: Answer) -> list[Any]:
        """A hit's answer as the chunks of a stream."""
        return list(self.codec.chunks(answer))
