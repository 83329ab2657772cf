"""A reserved request (:class:`Ticket`) and a served one (:class:`Routed`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..policy import Decision
from ..policy.certificate import Certificate
from ..task.answer import Answer

__all__ = ["Routed", "Ticket"]


@dataclass(frozen=True, slots=True)
class Routed:
    """The answer the user gets, who gave it, what the whole request cost, and the certificate."""

    answer: Answer
    route: str
    probe: bool
    cost: float
    certificate: Certificate
    request_id: str
    #: The routed candidate failed and the reference answered instead.
    fallback: bool = False

    def record(self) -> dict[str, Any]:
        """The routing record integrations hand to their users (JSON-ready): who answered,
        whether it was a probe or a fallback, the request's id, task and cost, the certificate."""
        return {
            "route": self.route,
            "probe": self.probe,
            "fallback": self.fallback,
            "request_id": self.request_id,
            "task": self.certificate.task,
            "cost": self.cost,
            "certificate": self.certificate.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Ticket:
    """One request reserved in the store: which route answers it and which are probed beside it.

    ``route`` is the route that answers the user (the reference on a probe or after a fallback);
    ``probe_models`` are the candidate routes measured alongside it.
    """

    request_id: str
    decision: Decision
    route: str
    fallback: bool = False
    #: False while the store is unreachable: the reference answers and nothing is recorded.
    recorded: bool = True
    #: The request as the caller passed it (``Calls.request``: provider-neutral messages from
    #: the adapters), for the scorers of cascade steps that read it; ``None`` if not given.
    request: Any = field(default=None, compare=False, repr=False)
    #: What the answer cache found for the request (a ``CacheLookup``), once looked up: a
    #: probe hands its nearest hit to the semantic routes it measures. (Not part of what makes
    #: two tickets the same request.)
    cached: Any = field(default=None, compare=False, repr=False)

    @property
    def task(self) -> str:
        return self.decision.certificate.task

    @property
    def probe(self) -> bool:
        return self.decision.probe and not self.fallback

    @property
    def probe_models(self) -> tuple[str, ...]:
        return self.decision.probe_models if self.probe else ()

    @property
    def certificate(self) -> Certificate:
        cert = self.decision.certificate
        return cert if cert.route == self.route else replace(cert, route=self.route)
