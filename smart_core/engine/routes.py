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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..task.answer import Answer
from .effects import Call, Effect
from .probe_run import CUT_SHORT

if TYPE_CHECKING:
    from .ticket import Ticket

__all__ = ["ModelRoute", "Route", "RouteTable"]


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
