"""Token usage for every inner call, streamed or not, so that SMART can price it.

A streamed answer carries usage only if the model was asked for it. ``ChatOpenAI`` does not ask
when a ``base_url``, proxy or client of your own is set, or when ``OPENAI_BASE_URL`` is in the
environment (``stream_usage`` stays ``None``): LangChain's default, because some
OpenAI-compatible servers reject ``stream_options``. Such a stream arrives without
``usage_metadata``. Priced at $0, the reference would look free, no candidate would look
cheaper, and SMART would drop them all and save nothing. So:

1. An inner model whose ``stream_usage`` is left to that default is asked for usage: SMART
   calls a copy of it with ``stream_usage=True`` (the user's object is not changed). A model
   set to ``stream_usage=False`` is left as the user set it.
2. An answer that still has no usage (``stream_usage=False``, or an integration that never
   reports usage) is priced from token counts estimated offline with LangChain's
   ``count_tokens_approximately`` (about four characters per token). A warning, once per model
   and router, says that the costs are estimates and how to make them exact.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.messages.utils import count_tokens_approximately

from smart_core import Usage

__all__ = ["EstimatedUsageWarning", "UsageWarnings", "estimated_usage", "reporting_usage"]


class EstimatedUsageWarning(UserWarning):
    """A model answered without token usage, so SMART prices its answers from estimates."""


def reporting_usage(model: BaseChatModel) -> BaseChatModel:
    """``model``, or a copy of it that reports usage on streams if it would not by default.

    The copy shares the original's HTTP clients. Only a ``stream_usage`` left unset (``None``)
    is changed: ``True`` or ``False`` is the user's own choice.
    """
    if "stream_usage" in type(model).model_fields and model.stream_usage is None:  # type: ignore[attr-defined]
        return model.model_copy(update={"stream_usage": True})
    return model


def estimated_usage(prompt: Sequence[BaseMessage], answer: BaseMessage) -> Usage:
    """Input and output tokens estimated from the text, for an answer without usage."""
    return Usage(
        input_tokens=count_tokens_approximately(prompt),
        output_tokens=count_tokens_approximately([answer], extra_tokens_per_message=0),
    )


class UsageWarnings:
    """Warns once per model name that its costs are estimated (thread-safe)."""

    def __init__(self) -> None:
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def warn(self, name: str, model: BaseChatModel) -> None:
        with self._lock:
            if name in self._warned:
                return
            self._warned.add(name)
        if "stream_usage" in type(model).model_fields:
            fix = (
                f"for exact costs, let it report usage: {type(model).__name__}(..., "
                "stream_usage=True), if its server accepts stream_options"
            )
        else:
            fix = "for exact costs, use an integration that fills AIMessage.usage_metadata"
        warnings.warn(
            f"model {name!r} answered without token usage, so SMART prices its answers from "
            f"estimated token counts (about 4 characters per token); {fix}",
            EstimatedUsageWarning,
            stacklevel=3,
        )
