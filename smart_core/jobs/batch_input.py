"""What a ``smart run`` reads and what identifies it: items, the prompt template, the run's record.

A run's state may only be resumed by the same run, so the state records what decided its answers
(the settings, by the option that sets each, and a digest per item). When a later start differs,
the refusal names what changed -- "--epsilon was 0.05, now 0.1", "the input file changed: 3
items differ" -- rather than two hashes the user cannot act on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import string
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["BatchItem", "check_prompt", "item_namespace", "load_items", "render_prompt"]

#: Item fields naming who asks (the answer cache's namespace, docs/cache.md): answers are never
#: served across tenants, nor across users when the task's answers are per user.
NAMESPACE_FIELDS = ("tenant", "user")
_NAME_LIMIT = 200


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One input item: its id (unique in the file), position and template fields, and the
    line (row) of the file it came from, for messages."""

    id: str
    index: int
    fields: dict[str, Any]
    line: int = 0


def load_items(path: str | Path) -> list[BatchItem]:
    """Items from a ``.jsonl`` (objects, or bare strings as ``{"text": ...}``) or ``.csv`` file.

    The id is the ``id`` field if present, else the 1-based line (row) number; ids must be unique.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--input: {path}: no such file")
    items: list[BatchItem] = []
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=1):
                # n counts data rows; the header is line 1 of the file
                items.append(BatchItem(str(row.get("id") or n), len(items), dict(row), n + 1))
    elif suffix in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
                if isinstance(obj, str):
                    obj = {"text": obj}
                if not isinstance(obj, dict):
                    raise ConfigError(f"{path}:{n}: each line must be a JSON object or a string")
                items.append(BatchItem(str(obj.get("id", n)), len(items), obj, n))
    else:
        raise ConfigError(f"--input: {path}: expected a .jsonl or .csv file")
    if not items:
        raise ConfigError(f"--input: {path} has no items")
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise ConfigError(f"--input: id {it.id!r} appears twice in {path}; ids must be unique")
        seen.add(it.id)
    return items


def item_namespace(item: BatchItem, path: str | Path) -> tuple[str | None, str | None]:
    """The item's ``tenant`` and ``user`` fields (``None`` where absent, null, or an empty CSV
    cell); ConfigError naming the field and the item's line for anything else than a name.

    A name is a non-empty string (or an integer, as JSON user ids often are) of at most 200
    characters, without surrounding spaces or control characters: a value such as ``" acme"``
    or ``5.0`` would silently open a namespace of its own, and its repeats would never meet."""
    csv_file = Path(path).suffix.lower() == ".csv"
    found: list[str | None] = []
    for field in NAMESPACE_FIELDS:
        value = item.fields.get(field)
        if value is None or (csv_file and value == ""):
            found.append(None)
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        problem = _name_problem(value)
        if problem:
            raise ConfigError(
                f"--input {path}:{item.line}: item {item.id!r} field {field!r} {problem} "
                f'(got {value!r}); name the {field} with a string such as "acme", or leave '
                f"the field out to use the default"
                + (" tenant (--config tenant)" if field == "tenant" else " (no user)")
            )
        found.append(value)
    return found[0], found[1]


def _name_problem(value: Any) -> str:
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value.strip():
        return "is empty"
    if value != value.strip():
        return "has leading or trailing spaces"
    if len(value) > _NAME_LIMIT:
        return f"is longer than {_NAME_LIMIT} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "holds control characters"
    return ""


# -- the prompt template ----------------------------------------------------------------------


def check_prompt(template: str, known: Sequence[str] = ()) -> list[str]:
    """The item fields ``template`` names; ConfigError for anything but plain ``{field}``.

    ``known`` (the first item's fields) only improves the message when no field is named.

    ``str.format`` would also accept ``{text.upper}`` (and send the repr of a bound method),
    ``{text[0]}``, ``{text!r}`` or ``{text:>20}``, and a template naming no field at all sends
    every item the same prompt: each is a mistake that costs a whole run, so each is refused
    before any call, naming the offending part and what to write instead.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"--prompt {template!r} is not a valid template ({exc}); name fields like {{text}} "
            "and double literal braces: {{ }}"
        ) from None
    fields: list[str] = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        written = "{" + name + (f"!{conversion}" if conversion else "")
        written += (f":{spec}" if spec else "") + "}"
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not base or base.isdigit():
            raise ConfigError(
                f"--prompt: {written} names no item field; write the field's name in braces, "
                "e.g. {text}"
            )
        if base != name:
            what = "an attribute" if name[len(base)] == "." else "an index"
            raise ConfigError(
                f"--prompt: {written} reads {what} of the field {base!r}; only plain {{field}} "
                f"references are allowed (an attribute such as {{{base}.upper}} would send the "
                f"text of a Python method). Write {{{base}}}, and give any other value the "
                "prompt needs its own field in the input"
            )
        if conversion or spec:
            raise ConfigError(
                f"--prompt: {written} converts or formats the field; only plain references are "
                f"allowed: write {{{name}}}"
            )
        fields.append(name)
    if not fields:
        example = next(iter(known), "text")
        raise ConfigError(
            f"--prompt {template!r} names no item field, so every item would be sent the same "
            f"prompt; add the field to answer about, e.g. '{template.rstrip()} {{{example}}}'"
            + (f" (the items' fields: {', '.join(known)})" if known else "")
        )
    return fields


def render_prompt(template: str, item: BatchItem) -> str:
    """``template`` with each ``{field}`` replaced; a missing field is a ConfigError naming it."""
    try:
        return template.format_map(item.fields)
    except KeyError as exc:
        raise ConfigError(
            f"--prompt uses {{{exc.args[0]}}} but item {item.id!r} has no field "
            f"{exc.args[0]!r}; its fields are {sorted(item.fields)}"
        ) from None
    except (IndexError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"--prompt {template!r} is not a valid template ({exc}); name fields like {{text}} "
            "and double literal braces: {{ }}"
        ) from None


# -- where the run writes ---------------------------------------------------------------------


def check_writable(path: Path, option: str) -> None:
    """ConfigError naming ``option`` unless ``path``'s folder exists (or can be made) and takes
    new files; checked before any call, so that a run never pays for answers it cannot keep."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        blocker = next((p for p in (folder, *folder.parents) if p.is_file()), None)
        reason = f"{blocker} is a file, not a folder" if blocker else exc.strerror or str(exc)
        raise ConfigError(
            f"{option} {path}: cannot write in the folder {folder} ({reason}); choose a "
            f"{option} path in a folder you can write to"
        ) from None


# -- what identifies a run --------------------------------------------------------------------


def run_record(settings: Mapping[str, str], items: Sequence[BatchItem]) -> dict[str, Any]:
    """The settings (by option) and a short digest per item, in input order, as saved."""

    def digest(it: BatchItem) -> str:
        text = json.dumps(it.fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    return {"settings": dict(settings), "items": [[it.id, digest(it)] for it in items]}


def _shown(value: str) -> str:
    return value if len(value) <= 60 and "\n" not in value else repr(value)


def describe_change(before: Mapping[str, Any] | None, now: Mapping[str, Any]) -> str:
    """What differs between two run records, in the user's terms."""
    if not before:
        return "it was started with other input or settings (by a version that kept no record)"
    changes = []
    old_settings = before.get("settings", {})
    for option, value in now["settings"].items():
        old = old_settings.get(option)
        if old != value:
            changes.append(f"{option} was {_shown(str(old))}, now {_shown(value)}")
    old_items, new_items = dict(before["items"]), dict(now["items"])
    differ = [i for i, d in new_items.items() if i in old_items and old_items[i] != d]
    added = [i for i in new_items if i not in old_items]
    removed = [i for i in old_items if i not in new_items]
    if differ or added or removed:
        counts = [
            f"{len(ids)} {what[len(ids) == 1]} (e.g. {ids[0]!r})"
            for ids, what in (
                (differ, ("items differ", "item differs")),
                (added, ("items added", "item added")),
                (removed, ("items removed", "item removed")),
            )
            if ids
        ]
        changes.append("the input file changed: " + ", ".join(counts))
    elif list(old_items) != list(new_items):
        changes.append("the input file lists the same items in another order")
    return "; ".join(changes) or "its input or settings changed"
