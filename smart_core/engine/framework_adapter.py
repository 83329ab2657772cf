"""What every framework adapter needs and must do the same way: naming its inner models, checking
task names, building the config with errors that name the adapter's own fields.

``smart_langchain.SmartChatModel`` and ``smart_llamaindex.SmartLLM`` both use these, so a user
gets the same rules and the same kind of message whichever framework they come from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..task.config import SmartConfig
from ..task.pricing import PriceTable

__all__ = ["check_task", "config_for", "model_name_of"]

_TASK = re.compile(r"^[A-Za-z0-9\-_.:/]+$")


def model_name_of(model: Any, attrs: Sequence[str] = ("model_name", "model", "model_id")) -> str:
    """The first non-empty string among ``model``'s ``attrs``; ``""`` if it has none.

    SMART keys prices and statistics by model name, so an inner model without one cannot be
    used; the adapter says which field lacks it.
    """
    for attr in attrs:
        value = getattr(model, attr, None)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def check_task(task: Any, example: str) -> str:
    """``task`` if it is a valid task name; else a :class:`ConfigError` showing ``example``."""
    if not isinstance(task, str) or not _TASK.match(task):
        raise ConfigError(
            f"smart_task must be a non-empty name of letters, digits and '-_.:/', got "
            f"{task!r}; e.g. {example}"
        )
    return task


def config_for(
    adapter: str,
    names: Sequence[str],
    where: Mapping[str, str],
    *,
    prices: Mapping[str, Any] | None,
    sources: Mapping[str, str] | None = None,
    **fields: Any,
) -> SmartConfig:
    """The config of an adapter whose models are ``names`` (reference first).

    ``where`` says, for each name, which of the adapter's fields holds that model (e.g.
    ``"candidates[0]"``) and ``sources`` where its name was read (``"ChatOpenAI.model_name"``):
    a model with no known price gets an error naming both and showing the ``prices=`` to pass.
    """
    prices = dict(prices or {})
    try:
        return SmartConfig(reference=names[0], candidates=list(names[1:]), prices=prices, **fields)
    except ConfigError as exc:
        table = PriceTable()
        unpriced = [n for n in names if n not in prices and table.lookup(n) is None]
        if not unpriced:
            raise
        sources = sources or {}
        fields_ = "; ".join(
            f"{where[n]} ({sources[n]} = {n!r})" if n in sources else f"{where[n]} ({n!r})"
            for n in unpriced
        )
        example = ", ".join(f"{n!r}: (1.0, 4.0)" for n in unpriced)
        raise ConfigError(
            f"{adapter} {fields_}: no price known; pass each model's price in USD per 1M tokens "
            f"(input, output), e.g. {adapter}(..., prices={{{example}}})"
        ) from exc
