"""Injected failures on a deterministic schedule, so a test of retries, fallbacks or timeouts
fails the same calls on every run."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from ..errors import ConfigError

__all__ = ["Fault", "FaultKind"]

FaultKind = Literal["rate_limit", "server_error", "timeout", "truncate"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One kind of failure and the calls it hits.

    Kinds:

    * ``"rate_limit"``: HTTP 429 with a ``retry-after`` header of ``retry_after`` seconds;
    * ``"server_error"``: HTTP 500;
    * ``"timeout"``: no response for ``hang`` seconds (``None``: until the client gives up or the
      server stops), so a client with a shorter timeout raises its timeout error;
    * ``"truncate"``: the connection closes halfway through the body (mid-SSE for streams).

    Schedule (at most one; none means every call). Calls are numbered from 1 per model name:

    * ``every=3``: calls 3, 6, 9, …;
    * ``calls=[1, 2]``: exactly those calls;
    * ``rate=0.2, seed=0``: each call with probability 0.2, decided by ``(seed, call number)``
      alone, so the same calls fail whatever the timing or concurrency.
    """

    kind: FaultKind
    every: int | None = None
    calls: Iterable[int] | None = None
    rate: float | None = None
    seed: int = 0
    retry_after: float = 0.1
    hang: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ConfigError(f"Fault kind {self.kind!r}: choose one of {get_args(FaultKind)}")
        chosen = [n for n in ("every", "calls", "rate") if getattr(self, n) is not None]
        if len(chosen) > 1:
            raise ConfigError(f"Fault({self.kind!r}): give at most one of every, calls, rate")
        if self.every is not None and self.every < 1:
            raise ConfigError(f"Fault({self.kind!r}): every must be >= 1")
        if self.calls is not None:
            calls = tuple(sorted(set(self.calls)))
            if not calls or calls[0] < 1:
                raise ConfigError(f"Fault({self.kind!r}): calls must be call numbers >= 1")
            object.__setattr__(self, "calls", calls)
        if self.rate is not None and not 0 <= self.rate <= 1:
            raise ConfigError(f"Fault({self.kind!r}): rate must be in [0, 1]")
        if self.retry_after < 0 or (self.hang is not None and self.hang < 0):
            raise ConfigError(f"Fault({self.kind!r}): retry_after and hang must be >= 0")

    def hits(self, call: int) -> bool:
        """Whether this fault strikes call number ``call`` (1-based)."""
        if self.every is not None:
            return call % self.every == 0
        if self.calls is not None:
            return call in self.calls  # type: ignore[operator]
        if self.rate is not None:
            return random.Random(f"{self.seed}/{call}").random() < self.rate
        return True
