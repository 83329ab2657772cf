"""Answers from a ``smart replay`` file, so the same logged outputs that drive the offline
replay can be served to a real client over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._replay import ReplayItem, load_replay
from ._prompt import Prompt
from ._reply import BadRequest, Reply

__all__ = ["replay", "replay_models"]


def _input_text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"].strip()
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _load(source: str | Path | Sequence[ReplayItem]) -> tuple[str, list[ReplayItem]]:
    if isinstance(source, str | Path):
        return str(source), load_replay(source)
    return "replay items", list(source)


def replay_models(source: str | Path | Sequence[ReplayItem]) -> list[str]:
    """Every model name that has an output somewhere in a replay file, in first-seen order."""
    return list(dict.fromkeys(m for item in _load(source)[1] for m in item.outputs))


def replay(
    source: str | Path | Sequence[ReplayItem], *, model: str | None = None
) -> Callable[[Prompt], Reply]:
    """A responder answering from a replay file (one JSON object per line:
    ``{"id", "input", "outputs": {model: {"text", "input_tokens"?, "output_tokens"?}}}``).

    The item is the one whose ``input`` equals the last user message (whitespace stripped), else
    the longest ``input`` contained in the prompt's text. The answer is that item's output for
    ``model`` (default: the model the client asked for), with its logged token counts when given.
    No matching item, or no output for the model, answers HTTP 400 naming the model.

    An ``input`` that is not a string is matched by its ``"text"`` field, else its JSON.
    """
    where, items = _load(source)
    exact: dict[str, ReplayItem] = {}
    for item in items:
        exact.setdefault(_input_text(item.input), item)
    by_length = sorted(
        (i for i in items if _input_text(i.input)), key=lambda i: -len(_input_text(i.input))
    )

    def answer(prompt: Prompt) -> Reply:
        name = model or prompt.model
        item = exact.get(prompt.last_user_text.strip())
        if item is None:
            text = prompt.text
            item = next((i for i in by_length if _input_text(i.input) in text), None)
        if item is None:
            shown = prompt.last_user_text.strip()
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise BadRequest(
                f"model {name!r}: no item of {where} ({len(items)} items) matches the prompt "
                f"{shown!r}"
            )
        out = item.outputs.get(name)
        if out is None:
            raise BadRequest(
                f"model {name!r}: replay item {item.id!r} of {where} has no output for it "
                f"(it has {sorted(item.outputs)})"
            )
        text = out.text if out.text is not None else json.dumps(out.value, ensure_ascii=False)
        return Reply(
            text=text,
            input_tokens=out.usage.input_tokens or None,
            output_tokens=out.usage.output_tokens or None,
        )

    return answer
