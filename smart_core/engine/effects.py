"""What the serving flow asks its driver to do (:mod:`smart_core.engine.flow`).

Each effect is a plain record; the driver performs it -- against the store, the models, the
probe runner -- and sends the result back into the flow, or throws the exception it raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..task.answer import Answer

if TYPE_CHECKING:
    from ..cache import CacheHit
    from .ticket import Routed, Ticket

__all__ = [
    "Begin",
    "Call",
    "Delivered",
    "Effect",
    "FallBack",
    "Finish",
    "LookUp",
    "RecordFailure",
    "Remember",
    "ServeHit",
    "Settle",
    "StartProbes",
]


@dataclass(frozen=True, slots=True)
class Begin:
    """Decide how to serve the request and reserve it in the store. Result: a ``Ticket``."""

    task: str | None
    request_id: str | None


@dataclass(frozen=True, slots=True)
class LookUp:
    """Look the request up in the answer cache. Result: a ``CacheLookup`` (its ``hits`` empty
    on a miss), or ``None`` when the request has no cache (the cache is off, the caller opted
    out, or the driver keeps none): then nothing is written to it either."""

    ticket: Ticket


@dataclass(frozen=True, slots=True)
class ServeHit:
    """Answer the user with a stored answer instead of any call, and record it (at no cost,
    as answered by ``ticket.route``, the hit's route). Result: the ``Routed``. A streaming
    driver relays the answer's chunks first."""

    ticket: Ticket
    hit: CacheHit


@dataclass(frozen=True, slots=True)
class Remember:
    """Store the reference's answer to this request in the answer cache."""

    ticket: Ticket
    routed: Routed


@dataclass(frozen=True, slots=True)
class StartProbes:
    """Start the probe calls of ``ticket`` beside the answering call. Result: a probe run (an
    object with ``cancel()``), or ``None`` when the ticket probes nothing."""

    ticket: Ticket


@dataclass(frozen=True, slots=True)
class Call:
    """Call ``model`` for ``ticket``. Result: its ``Answer`` (``None`` for a stream that ended
    with nothing to record), or the call's exception thrown into the flow.

    ``to_user`` says the answer goes to the user as it comes (a streaming driver relays it);
    a step whose answer may still be rejected (a cascade's) sets it False.
    """

    ticket: Ticket
    model: str
    to_user: bool = True


@dataclass(frozen=True, slots=True)
class FallBack:
    """Record that the routed candidate failed; re-route to the reference. Result: a ``Ticket``."""

    ticket: Ticket
    error: BaseException


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """Record a failure with nothing to fall back to (part of the answer reached the user)."""

    ticket: Ticket
    error: BaseException


@dataclass(frozen=True, slots=True)
class Finish:
    """Record the answer the user got. Result: the ``Routed``. ``cache_miss``: the answer
    cache was looked in and held nothing for the request (counted with the answer)."""

    ticket: Ticket
    answer: Answer
    cache_miss: bool = False


@dataclass(frozen=True, slots=True)
class Settle:
    """Hand the reference's answer to the probe run, which records the probe once every probed
    call is done (now, or in the background)."""

    probes: Any
    answer: Answer


Effect = (
    Begin
    | LookUp
    | ServeHit
    | StartProbes
    | Call
    | FallBack
    | RecordFailure
    | Finish
    | Settle
    | Remember
)


class Delivered(Exception):
    """Thrown into the flow by a streaming driver: the call failed after part of its answer had
    reached the user, so there is no falling back, only counting the failure."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error
