"""Semantic cache hits as routes: ``cache:semantic@s`` serves the stored answer to the nearest
earlier request (same tenant, same user when answers are per user, same context) if its
similarity is at least ``s``, else the reference's answer.

An answer to a similar request is not the reference's answer to this one (paraphrases get
different answers, similar spellings ask different things), so a semantic hit is never trusted
by its threshold. Each threshold is a route the policy mixes like a candidate model, under a
bound learned on probes: on a probe (a uniform draw of requests) the flow holds the cache's
nearest hit and the reference's answer, and :meth:`SemanticRoute.probe_answer` says what the
route *would* have served -- the hit if close enough, else the reference's own answer -- which
is compared with the reference's answer like any candidate's. False hits push the route's
bound down and the policy stops using it; the exact cache's rule (an identical request's stored
reference answer, served whatever the route) is unchanged. See docs/guarantee.md.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..cache import SEMANTIC_HIT_ROUTE, CacheHit, CacheLookup
from ..task.answer import Answer
from ..task.config import semantic_route_name
from .effects import Call, Effect
from .probe_run import CUT_SHORT
from .routes import RouteAnswer

if TYPE_CHECKING:
    from .ticket import Ticket

__all__ = ["NEAREST", "SemanticRoute", "nearest_answer"]

#: Where a probe's collected answers hold the cache's nearest hit (SmartConfig refuses model
#: names starting with ``cache:``, so it is never a model's).
NEAREST = SEMANTIC_HIT_ROUTE


def nearest_answer(found: CacheLookup | None) -> RouteAnswer | None:
    """The nearest hit of a lookup as a probe's answer: its similarity as ``score``, costing
    nothing (no call is made to serve it)."""
    hit = found.nearest if found is not None else None
    if hit is None:
        return None
    answer = RouteAnswer.of(hit.answer, (), step=0, step_name="cache", score=hit.similarity)
    answer.cost = 0.0
    return answer


class SemanticRoute:
    """``cache:semantic@s``: the nearest earlier answer at similarity ``s`` or more, else the
    reference (its only call)."""

    __slots__ = ("models", "name", "reference", "similarity")

    #: Its cost is learned from the requests it serves, not from probes: while the cache is
    #: still filling, a probe's would-be cost is the reference's nearly always, and the policy
    #: would drop the route as no cheaper than the reference before it had any hits. Probing
    #: it calls no model, so keeping it measured costs nothing; its bound is learned on probes.
    costed_on_probes = False

    def __init__(self, similarity: float, reference: str) -> None:
        self.similarity = similarity
        self.reference = reference
        self.name = semantic_route_name(similarity)
        # The reference is the only model it may call; a probe already calls it.
        self.models: tuple[str, ...] = (reference,)

    def __repr__(self) -> str:
        return f"SemanticRoute({self.name!r})"

    def cache_hit(self, found: CacheLookup | None) -> CacheHit | None:
        """The hit this route serves for a request the cache found ``found`` for, recorded
        under the route's name; ``None``: no hit close enough, the reference answers."""
        hit = found.nearest if found is not None else None
        if hit is None or hit.similarity < self.similarity:
            return None
        return replace(hit, route=self.name)

    def serve(self, ticket: Ticket) -> Generator[Effect, Any, Answer | None]:
        # Reached only when no hit was close enough (the flow serves a hit itself).
        final = yield Call(ticket, self.reference)
        if final is None:
            return None
        if not final.model:
            final.model = self.reference
        return self._reference(final)

    def probe_answer(self, answers: Mapping[str, Answer | BaseException]) -> Answer | BaseException:
        """The nearest hit if its similarity is at least the route's (the probe put it under
        :data:`NEAREST`), else the reference's answer: what serving would have given."""
        near = answers.get(NEAREST)
        if isinstance(near, RouteAnswer) and (near.score or 0.0) >= self.similarity:
            return near
        final = answers.get(self.reference, CUT_SHORT)
        if not isinstance(final, Answer):
            return final
        return self._reference(final)

    def _reference(self, final: Answer) -> RouteAnswer:
        # The reference's own answer to this request: the flow stores it in the cache.
        return RouteAnswer.of(final, (final,), step=1, step_name="ref", score=None)
