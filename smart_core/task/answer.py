"""What a model endpoint returns to the engine: the answer, what it cost, and who gave it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .usage import Usage

__all__ = ["Answer"]


@dataclass(slots=True)
class Answer:
    """One model's answer to one request.

    ``text`` is the plain answer; ``value`` an optional structured form (parsed JSON, tool calls)
    that comparators prefer when present. ``cost`` (USD) overrides pricing from ``usage`` when the
    caller already knows it (replays, providers that bill per call). ``raw`` is passed through
    untouched for the framework adapters. ``logprobs`` are the answer's token log-probabilities
    when the model was asked for them (a cascade step judged by its confidence), in the
    provider-neutral form every adapter reads them into.
    """

    text: str | None = None
    value: Any = None
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    raw: Any = None
    logprobs: tuple[float, ...] | None = None
