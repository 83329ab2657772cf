"""Routes: the ways a request can be answered, as objects the policy mixes and the flow serves.

A route has a name (the key of its counters, its bound and its share of the mix), the models it
may call, and a way of being served. The policy never sees models, only routes; the flow asks
the route which calls to make. On a probe the flow holds the reference's answer and every probed
model's answer, and hands them to each probed route, which says what it *would* have answered:
so a route's agreement and cost are measured without paying the reference twice, and every
route's sample stays the same unbiased draw of requests.

A single model is one kind of route (:class:`ModelRoute`); a route's expected cost is learned
from what it spent (``calls:`` / ``call_cost:`` counters, keyed by the route's name).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..task.answer import Answer
from .effects import Call, Effect
from .probe_run import CUT_SHORT

if TYPE_CHECKING:
    from .ticket import Ticket

__all__ = ["ModelRoute", "Route", "RouteAnswer", "RouteTable", "cost_of_route"]


@dataclass(slots=True)
class RouteAnswer(Answer):
    """The answer a route of several calls serves: the served call's answer (its fields, so
    adapters read it as that call's), every call the route made for it, and which step answered.

    The request's cost is the sum over ``calls`` (a cascade pays for its rejected steps too);
    ``source`` is the served call's own answer, which a streaming driver relays if it held it
    back while the route decided.
    """

    #: Every call's answer the route made (or, on a probe, would have made), in order.
    calls: tuple[Answer, ...] = ()
    #: The answering step's index (0 = first) and label, and its score (``None`` for the last).
    step: int | None = None
    step_name: str = ""
    score: float | None = None
    source: Answer | None = None

    @classmethod
    def of(cls, source: Answer, calls: tuple[Answer, ...], **where: Any) -> RouteAnswer:
        copied = {f.name: getattr(source, f.name) for f in fields(Answer)}
        return cls(**copied, calls=calls, source=source, **where)


def cost_of_route(answer: Answer, cost_of: Any) -> float:
    """What a route's answer cost: every call it made (one for a plain model's answer)."""
    if isinstance(answer, RouteAnswer) and answer.calls:
        return sum(cost_of(a) for a in answer.calls)
    return cost_of(answer)


@runtime_checkable
class Route(Protocol):
    """What the engine needs of a route."""

    @property
    def name(self) -> str:
        """Key of the route's counters, bound and mix share; unique within a task."""
        ...

    @property
    def models(self) -> tuple[str, ...]:
        """Every model the route may call, in the order it may call them."""
        ...

    def serve(self, ticket: Ticket) -> Generator[Effect, Any, Answer | None]:
        """The calls that answer the user, as effects of the serving flow (:mod:`.flow`)."""
        ...

    def probe_answer(self, answers: Mapping[str, Answer | BaseException]) -> Answer | BaseException:
        """What the route would have answered, from the answers a probe collected by model."""
        ...


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """One model answers: the route is the model, under the model's own name."""

    name: str

    @property
    def models(self) -> tuple[str, ...]:
        return (self.name,)

    def serve(self, ticket: Ticket) -> Generator[Effect, Any, Answer | None]:
        return (yield Call(ticket, self.name))

    def probe_answer(self, answers: Mapping[str, Answer | BaseException]) -> Answer | BaseException:
        return answers.get(self.name, CUT_SHORT)


class RouteTable:
    """The routes of one task by name: the reference's and every candidate's."""

    def __init__(self, reference: Route, candidates: Iterable[Route]) -> None:
        self.reference = reference
        self._routes: dict[str, Route] = {reference.name: reference}
        for route in candidates:
            if route.name in self._routes:
                raise ValueError(f"routes: two routes are named {route.name!r}")
            self._routes[route.name] = route

    @classmethod
    def of_models(cls, reference: str, candidates: Iterable[str]) -> RouteTable:
        """One :class:`ModelRoute` per model: the routes of a task whose config names models."""
        return cls(ModelRoute(reference), [ModelRoute(c) for c in candidates])

    @classmethod
    def of_config(cls, config: Any) -> RouteTable:
        """The routes of a :class:`~smart_core.SmartConfig`: a :class:`ModelRoute` per model, a
        :class:`~smart_core.engine.cascade.CascadeRoute` per configured cascade (but those
        whose learned scorer is still to be fit) and, with
        ``cache="semantic"``, a :class:`~smart_core.engine.semantic_route.SemanticRoute` per
        similarity threshold."""
        from .cascade import CascadeRoute
        from .semantic_route import SemanticRoute

        ref = config.reference.name
        models: list[Route] = [ModelRoute(c.name) for c in config.candidates]
        comparator = config.comparator  # a cascade whose learned scorer still trains: no route
        trained = [c for c in config.cascade_list() if not c.untrained]
        cascades = [CascadeRoute(c, ref, comparator) for c in trained]
        semantic = []
        if config.cache == "semantic":
            semantic = [SemanticRoute(s, ref) for s in config.cache_similarities]
        return cls(ModelRoute(ref), [*models, *cascades, *semantic])

    def open(self, route: Route) -> None:
        """Add ``route`` (a cascade whose learned scorer was just frozen) unless it is there."""
        self._routes.setdefault(route.name, route)

    def __getitem__(self, name: str) -> Route:
        try:
            return self._routes[name]
        except KeyError:
            raise KeyError(f"no route named {name!r}; routes: {list(self._routes)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._routes

    def __iter__(self):
        return iter(self._routes.values())

    def models_to_probe(self, routes: Iterable[str]) -> tuple[str, ...]:
        """The models a probe of ``routes`` must call beside the reference, each once."""
        out: dict[str, None] = {}
        for name in routes:
            for model in self[name].models:
                if model != self.reference.name:
                    out[model] = None
        return tuple(out)
