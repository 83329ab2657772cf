"""Token log-probabilities for the fake server's OpenAI answers (``logprobs: true``).

They are made up, but deterministically and with the one property a confidence scorer reads:
the probability of the whole answer, ``exp(sum of token logprobs)``, is the reply's
``confidence`` (a responder returns ``Reply(text, confidence=0.97)`` to make a model sure or
unsure of an answer). Without one, the confidence is a fixed function of the text, between 0.5
and 1, so the same answer is always as confident. Tokens are the word-sized pieces the text is
streamed in, so a streamed answer's per-chunk logprobs add up to the whole answer's.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from ._sse import text_pieces

__all__ = ["MAX_TOP_LOGPROBS", "default_confidence", "token_logprobs"]

#: OpenAI accepts ``top_logprobs`` from 0 to 20.
MAX_TOP_LOGPROBS = 20


def default_confidence(text: str) -> float:
    """The answer's probability when the responder set none: in [0.5, 1), fixed by the text."""
    digest = hashlib.sha256(text.encode()).digest()
    return 0.5 + 0.5 * int.from_bytes(digest[:8], "big") / 2**64


def token_logprobs(text: str, confidence: float, top: int = 0) -> list[dict[str, Any]]:
    """OpenAI's ``logprobs.content`` entries for ``text``: one per streamed piece, each with
    ``token``, ``logprob``, ``bytes`` and ``top_logprobs`` (``top`` alternatives: the chosen
    token and made-up ones sharing the rest of the probability mass, most likely first).
    The logprobs sum to ``log(confidence)``, spread evenly over the tokens."""
    if not 0.0 < confidence <= 1.0:
        raise ValueError(f"confidence must be in (0, 1], got {confidence!r}")
    pieces = text_pieces(text)
    if not pieces:
        return []
    each = math.log(confidence) / len(pieces)
    return [_entry(piece, each, top) for piece in pieces]


def _entry(token: str, logprob: float, top: int) -> dict[str, Any]:
    alternatives = [_top(token, logprob)]
    rest = 1.0 - math.exp(logprob)
    for i in range(1, top):
        # Halving shares keep the alternatives' mass below what the chosen token left, and
        # each less likely than the last.
        share = rest / 2**i
        alt = f"{token.rstrip()}~{i}"
        alternatives.append(_top(alt, math.log(share) if share > 0 else -9999.0))
    entry = _top(token, logprob)
    entry["top_logprobs"] = sorted(alternatives[:top], key=lambda a: -a["logprob"])
    return entry


def _top(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}
