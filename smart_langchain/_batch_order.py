"""The order of a ``.batch()`` in batch mode: drawn by SMART, blind to the inputs.

Batch mode's guarantee needs the items of a batch to be decided in a random order (the probed
items must be a uniform sample of the items not yet probed). ``.batch()`` starts its items in
list order, so SmartChatModel hands LangChain the inputs in an order drawn with the router's
seeded generator and puts the outputs back in input order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_config_list

__all__ = ["drawn_order", "in_input_order"]

_T = TypeVar("_T")


def drawn_order(
    inputs: Sequence[Any],
    config: RunnableConfig | Sequence[RunnableConfig] | None,
    rng: random.Random,
) -> tuple[list[int], list[Any], list[RunnableConfig]]:
    """A random permutation of the inputs' positions, and the inputs and their configs in it."""
    configs = get_config_list(config, len(inputs))
    order = list(range(len(inputs)))
    rng.shuffle(order)
    return order, [inputs[i] for i in order], [configs[i] for i in order]


def in_input_order(outputs: Sequence[_T], order: Sequence[int]) -> list[_T]:
    """``outputs`` (in drawn order) put back where their inputs were."""
    result: list[Any] = [None] * len(order)
    for position, output in zip(order, outputs, strict=True):
        result[position] = output
    return result
