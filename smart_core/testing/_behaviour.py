"""How one served model acts: what it answers, how slowly, and when it fails."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from ..errors import ConfigError
from ._echo import echo
from ._faults import Fault
from ._prompt import Prompt
from ._reply import Reply, as_reply

__all__ = ["Behaviour", "Responder", "as_behaviour", "respond"]

#: A function of the prompt, sync or async, returning text, a ToolCall (or several), a Reply or
#: a JSON-serialisable value.
Responder: TypeAlias = Callable[[Prompt], Any | Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One served model.

    ``respond`` is a :data:`Responder` or a fixed string (default: :func:`echo`). ``latency``
    seconds pass before the first byte of every response; ``chunk_latency`` seconds between
    streamed events. ``faults`` are checked in order; the first that hits a call decides it.
    """

    respond: Responder | str = echo
    latency: float = 0.0
    chunk_latency: float = 0.0
    faults: Iterable[Fault] = ()

    def __post_init__(self) -> None:
        if self.latency < 0 or self.chunk_latency < 0:
            raise ConfigError("Behaviour: latency and chunk_latency must be >= 0 seconds")
        faults = tuple(self.faults)
        if not all(isinstance(f, Fault) for f in faults):
            raise ConfigError("Behaviour: faults must be Fault objects")
        object.__setattr__(self, "faults", faults)

    def fault_for(self, call: int) -> Fault | None:
        """The fault that strikes call number ``call`` (1-based), if any."""
        return next((f for f in self.faults if f.hits(call)), None)


def as_behaviour(value: Behaviour | Responder | str) -> Behaviour:
    """Accept the shorthands a model mapping allows: a Behaviour, a responder or a fixed text."""
    if isinstance(value, Behaviour):
        return value
    if isinstance(value, str) or callable(value):
        return Behaviour(value)
    raise ConfigError(
        f"a served model must be a Behaviour, a function of the prompt or a string, "
        f"not {type(value).__name__}"
    )


async def respond(behaviour: Behaviour, prompt: Prompt) -> Reply:
    """Run a behaviour's responder (awaiting it if it is async) and normalise its answer."""
    if isinstance(behaviour.respond, str):
        return Reply(text=behaviour.respond)
    result = behaviour.respond(prompt)
    if inspect.isawaitable(result):
        result = await result
    return as_reply(result)
