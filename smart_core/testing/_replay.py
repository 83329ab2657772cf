"""Answers from a ``smart replay`` file, so the same logged outputs that drive the offline
replay can be served to a real client over HTTP."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..jobs.replay import ReplayItem, load_replay
from ._prompt import Prompt
from ._reply import BadRequest, Reply

__all__ = ["ReplayResponder", "replay"]


def _input_text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"].strip()
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class ReplayResponder:
    """A responder answering from replay items; built by :func:`replay`.

    ``models`` lists every model with an output somewhere in the items, in first-seen order.
    """

    def __init__(self, items: Sequence[ReplayItem], *, model: str | None, source: str) -> None:
        self.items, self.model, self.source = list(items), model, source
        self.models = list(dict.fromkeys(m for item in self.items for m in item.outputs))
        self._exact: dict[str, ReplayItem] = {}
        for item in self.items:
            self._exact.setdefault(_input_text(item.input), item)
        keyed = [(_input_text(i.input), i) for i in self.items]
        self._by_length = sorted(((k, i) for k, i in keyed if k), key=lambda p: -len(p[0]))

    def find(self, prompt: Prompt) -> ReplayItem | None:
        """The item whose input equals the last user message (stripped), else the one with the
        longest input contained in the prompt's text."""
        item = self._exact.get(prompt.last_user_text.strip())
        if item is None:
            text = prompt.text
            item = next((i for key, i in self._by_length if key in text), None)
        return item

    def __call__(self, prompt: Prompt) -> Reply:
        name = self.model or prompt.model
        item = self.find(prompt)
        if item is None:
            shown = prompt.last_user_text.strip()
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise BadRequest(
                f"model {name!r}: no item of {self.source} ({len(self.items)} items) matches "
                f"the prompt {shown!r}"
            )
        out = item.outputs.get(name)
        if out is None:
            raise BadRequest(
                f"model {name!r}: replay item {item.id!r} of {self.source} has no output for it "
                f"(it has {sorted(item.outputs)})"
            )
        text = out.text if out.text is not None else json.dumps(out.value, ensure_ascii=False)
        return Reply(
            text=text,
            input_tokens=out.usage.input_tokens or None,
            output_tokens=out.usage.output_tokens or None,
        )

    def __repr__(self) -> str:
        return f"replay({self.source!r}, model={self.model!r})"


def replay(
    source: str | Path | Sequence[ReplayItem], *, model: str | None = None
) -> ReplayResponder:
    """A responder answering from a replay file (one JSON object per line:
    ``{"id", "input", "outputs": {model: {"text", "input_tokens"?, "output_tokens"?}}}``) or
    from already loaded items.

    The item is the one whose ``input`` equals the last user message (whitespace stripped), else
    the longest ``input`` contained in the prompt's text. The answer is that item's output for
    ``model`` (default: the model the client asked for, so one responder can serve every model
    of the file), with its logged token counts when given. No matching item, or no output for the
    model, answers HTTP 400 naming the model.

    An ``input`` that is not a string is matched by its ``"text"`` field, else its JSON.
    """
    if isinstance(source, str | Path):
        return ReplayResponder(load_replay(source), model=model, source=str(source))
    return ReplayResponder(source, model=model, source="replay items")
