"""Server-sent-event framing and the way answers are cut into streamed pieces, shared by both
wires so a stream always reassembles to exactly the non-streamed answer."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["fragments", "frame", "text_pieces"]

_WORD_START = re.compile(r"(?<=\s)(?=\S)")


def frame(data: Any, event: str | None = None) -> str:
    """One SSE frame: an optional ``event:`` line, a ``data:`` line, a blank line. Strings are
    sent as is (``[DONE]``), anything else as compact JSON."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n"


def text_pieces(text: str) -> list[str]:
    """Word-sized pieces (each word with the whitespace after it), like a tokenizer's deltas."""
    return [p for p in _WORD_START.split(text) if p]


def fragments(text: str, size: int = 16) -> list[str]:
    """Fixed-size slices of a JSON string, as providers stream tool-call arguments."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
