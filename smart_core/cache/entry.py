"""A cache entry: the reference's answer as the store keeps it, and back.

What is kept is the answer (text, structured value, model, usage, cost) and the framework's own
form of the message (``payload``, written by the adapter: a LangChain message dict, a LlamaIndex
response dict), so a hit hands the user the same kind of object a call would. Nothing of the
request is kept beyond its hash, and nothing of the client: no headers, no keys.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ..task.answer import Answer
from ..task.usage import Usage

__all__ = ["CachedAnswer"]


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """One stored reference answer: the answer, what it cost, when it was stored."""

    answer: Answer
    cost: float
    stored_at: float
    payload: Any = None

    def dumps(self) -> str:
        a = self.answer
        return json.dumps(
            {
                "text": a.text,
                "value": a.value,
                "model": a.model,
                "usage": dataclasses.asdict(a.usage),
                "cost": self.cost,
                "stored_at": self.stored_at,
                "payload": self.payload,
            },
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )

    @classmethod
    def loads(cls, text: str) -> CachedAnswer:
        data = json.loads(text)
        answer = Answer(
            text=data.get("text"),
            value=data.get("value"),
            model=data.get("model") or "",
            usage=Usage(**(data.get("usage") or {})),
        )
        return cls(answer, float(data["cost"]), float(data["stored_at"]), data.get("payload"))
