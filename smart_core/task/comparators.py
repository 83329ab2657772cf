"""Comparators: when is a candidate's answer "the same" as the reference's?

SMART's guarantee is about agreement with the reference, so the comparator *defines* what the
guarantee means: too strict and cheap models never qualify, too loose and the guarantee is empty.

Every built-in comparator extracts a canonical ``key`` from each answer and compares keys, with
one rule for failed extractions (``key`` returns None):

* candidate key None, reference key not None: **disagree** (a candidate whose answer cannot be
  read is never counted as agreeing);
* reference key None, candidate key not None: disagree (the candidate said something the
  reference did not);
* both None: agree only when both normalised texts (see :func:`normalize_text`) are equal and
  non-empty, i.e. both models gave the same unparseable reply; two empty or failed answers never
  agree.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import unicodedata
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from .answer import Answer

__all__ = [
    "CallableMatch",
    "ChoiceMatch",
    "Comparator",
    "ExactMatch",
    "JsonMatch",
    "NumberMatch",
    "RegexMatch",
    "ToolCallMatch",
    "normalize_text",
    "parse_comparator",
]


@runtime_checkable
class Comparator(Protocol):
    """Decides whether ``candidate`` agrees with ``reference``; ``key`` shows what is compared."""

    name: str

    def __call__(self, candidate: Answer, reference: Answer) -> bool: ...

    def key(self, answer: Answer) -> Hashable | None: ...


# -- text helpers ---------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")
_TRAILING_PUNCT = ".,;:!?。、，；：！？…"


def normalize_text(text: str | None) -> str:
    """Canonical text for equality: NFKC, casefold, collapsed whitespace, no trailing ``.,;:!?``.

    Answers differing only in case, spacing or a final full stop mean the same thing; stripping
    more (quotes, inner punctuation) would start merging answers that genuinely differ.
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _WHITESPACE.sub(" ", text).strip()
    return text.rstrip(_TRAILING_PUNCT + " ")


def _text(answer: Answer) -> str:
    """The answer's text; a string ``value`` stands in when ``text`` is missing."""
    if answer.text is not None:
        return answer.text
    return answer.value if isinstance(answer.value, str) else ""


class _KeyComparator:
    """Shared machinery: compare extracted keys under the module's failed-extraction rule."""

    __slots__ = ()
    name: str = ""

    def key(self, answer: Answer) -> Hashable | None:
        raise NotImplementedError

    def _keys_agree(self, candidate: Any, reference: Any) -> bool:
        return bool(candidate == reference)

    def __call__(self, candidate: Answer, reference: Answer) -> bool:
        ck, rk = self.key(candidate), self.key(reference)
        if ck is None and rk is None:
            ct = normalize_text(_text(candidate))
            return bool(ct) and ct == normalize_text(_text(reference))
        if ck is None or rk is None:
            return False
        return self._keys_agree(ck, rk)

    def _params(self) -> tuple[Any, ...]:
        return ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._params() == other._params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._params()))

    def __repr__(self) -> str:
        args = ", ".join(repr(p) for p in self._params())
        return f"{type(self).__name__}({args})"


# -- exact ----------------------------------------------------------------------------------------


class ExactMatch(_KeyComparator):
    """Normalised text equality (see :func:`normalize_text`); the default comparator."""

    __slots__ = ()
    name = "exact"

    def key(self, answer: Answer) -> Hashable | None:
        return normalize_text(_text(answer)) or None


# -- multiple choice / labels ---------------------------------------------------------------------

# Characters that may precede an answer that leads the text: "(B)", "**B**", "'B'", "- B".
_LEAD = r"^[\s(\[{*_\"'`>#\-]*"
_BOUNDARY_BEFORE = r"(?<!\w)"
_BOUNDARY_AFTER = r"(?!\w)"
# "answer is (C)", "Answer: d", "final answer = B", "the answer would be B".
_MARKER = r"\banswer\b[^\w\n]{0,3}(?:(?:is|would be)\b)?[\s:=\-(\[{*_\"'`]*"


class ChoiceMatch(_KeyComparator):
    """Which of a fixed set of labels the answer picks (multiple choice, classification).

    The first rule that finds a label wins; rules are tried in this order:

    1. ``Answer.value`` is a string equal to a label (case-insensitive);
    2. the text *starts* with a label (after blanks and openers like ``(``, ``*``, quotes) that is
       not followed by a letter or digit: ``"B\\n"``, ``" A"``, ``"A."``, ``"(c) because..."``;
       so ``"Answer: d"`` does not start with label ``A``;
    3. an answer marker followed by a label: ``"The answer is (C)."``, ``"Answer: d"``;
    4. the first label occurring as a whole token anywhere: ``"I pick B"``.

    Rules 3 and 4 first look for labels in the case they were given, then case-insensitively,
    so with upper-case labels the article "a" is only taken when no upper-case label appears.
    A text that starts with the article ("A good option is B") is read as label ``A`` by rule 2;
    ask models to answer with the bare label. Word labels (``positive``, ``spam``) work alike.
    The key is the label exactly as listed in ``labels``.
    """

    __slots__ = (
        "_by_fold",
        "_exact",
        "_fold",
        "_leading",
        "_marker_exact",
        "_marker_fold",
        "labels",
        "name",
    )

    def __init__(self, labels: Sequence[str]) -> None:
        if isinstance(labels, str):
            labels = labels.split(",")
        cleaned = [lab.strip() if isinstance(lab, str) else lab for lab in labels]
        bad = [lab for lab in cleaned if not isinstance(lab, str) or not lab]
        if not cleaned or bad:
            raise ConfigError(
                f"ChoiceMatch labels must be a non-empty list of non-empty strings, got "
                f"{list(labels)!r}; e.g. ChoiceMatch(['A', 'B', 'C', 'D']) or 'choice:A,B,C,D'"
            )
        folded = [lab.casefold() for lab in cleaned]
        dupes = sorted({lab for lab, f in zip(cleaned, folded, strict=True) if folded.count(f) > 1})
        if dupes:
            raise ConfigError(
                f"ChoiceMatch labels must differ ignoring case; {dupes!r} appear more than once "
                f"in {cleaned!r}; list each label once"
            )
        self.labels: tuple[str, ...] = tuple(cleaned)
        self.name = "choice:" + ",".join(self.labels)
        self._by_fold = dict(zip(folded, self.labels, strict=True))
        # Longest first so "not spam" beats "spam" at the same position.
        alternatives = "|".join(
            re.escape(lab) for lab in sorted(self.labels, key=len, reverse=True)
        )
        group = f"({alternatives})"
        self._leading = re.compile(_LEAD + group + _BOUNDARY_AFTER, re.IGNORECASE)
        self._marker_exact = re.compile(_MARKER + group + _BOUNDARY_AFTER)
        self._marker_fold = re.compile(_MARKER + group + _BOUNDARY_AFTER, re.IGNORECASE)
        self._exact = re.compile(_BOUNDARY_BEFORE + group + _BOUNDARY_AFTER)
        self._fold = re.compile(_BOUNDARY_BEFORE + group + _BOUNDARY_AFTER, re.IGNORECASE)

    def _params(self) -> tuple[Any, ...]:
        return (self.labels,)

    def key(self, answer: Answer) -> Hashable | None:
        if isinstance(answer.value, str):
            label = self._by_fold.get(answer.value.strip().casefold())
            if label is not None:
                return label
        text = unicodedata.normalize("NFKC", _text(answer))
        if not text:
            return None
        # The marker regexes say "answer" case-sensitively in lower case; fold it for them only.
        marked = re.sub(r"(?i)\banswer\b", "answer", text)
        for pattern, haystack in (
            (self._leading, text),
            (self._marker_exact, marked),
            (self._marker_fold, marked),
            (self._exact, text),
            (self._fold, text),
        ):
            match = pattern.search(haystack)
            if match:
                return self._by_fold[match.group(1).casefold()]
        return None


# -- regex ----------------------------------------------------------------------------------------


class RegexMatch(_KeyComparator):
    """Compares the part of each answer a regular expression picks out.

    The key is the first *participating* capture group of the first match (the whole match when
    the pattern has no groups), normalised like :class:`ExactMatch`; no match means no key.
    """

    __slots__ = ("_regex", "flags", "name", "pattern")

    def __init__(self, pattern: str | re.Pattern[str], flags: int = 0) -> None:
        if isinstance(pattern, re.Pattern):
            pattern, flags = pattern.pattern, pattern.flags | flags
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(
                f"RegexMatch pattern must be a non-empty string, got {pattern!r}; "
                r"e.g. RegexMatch(r'answer:\s*(\w+)') or 'regex:answer:\s*(\w+)'"
            )
        try:
            self._regex = re.compile(pattern, flags)
        except re.error as exc:
            raise ConfigError(
                f"RegexMatch pattern {pattern!r} is not a valid regular expression ({exc}); "
                "fix the pattern (Python 're' syntax)"
            ) from None
        self.pattern = pattern
        self.flags = flags
        self.name = f"regex:{pattern}"

    def _params(self) -> tuple[Any, ...]:
        return (self.pattern, self.flags) if self.flags else (self.pattern,)

    def key(self, answer: Answer) -> Hashable | None:
        match = self._regex.search(_text(answer))
        if match is None:
            return None
        if self._regex.groups:
            found = next((g for g in match.groups() if g is not None), None)
        else:
            found = match.group(0)
        return normalize_text(found) or None


# -- numbers --------------------------------------------------------------------------------------

_NUMBER = re.compile(
    r"(?<![\w.])"  # not the tail of a word, identifier or decimal
    r"(?P<sign>[-+\u2212])?\s?[$€£¥]?\s?"
    r"(?P<digits>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"(?P<exp>[eE][-+]?\d+)?"
)


def _last_number(text: str) -> float | None:
    matches = list(_NUMBER.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    value = float(last["digits"].replace(",", "") + (last["exp"] or ""))
    if last["sign"] in ("-", "\u2212"):
        value = -value
    return value + 0.0  # turn -0.0 into 0.0 so equal keys hash alike


class NumberMatch(_KeyComparator):
    """Compares the *last* number in each answer (where reasoning models put the result).

    Understands ``-3.5``, ``1,234`` (thousands separators), ``1e-3`` and currency signs (``$12``).
    A numeric ``Answer.value`` is used as is. With ``relative=True`` the tolerance is a share of
    the larger magnitude (0.01 = 1%); otherwise it is absolute.
    """

    __slots__ = ("name", "relative", "tolerance")

    def __init__(self, tolerance: float = 0.0, relative: bool = False) -> None:
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, int | float)
            or not math.isfinite(tolerance)
            or tolerance < 0
        ):
            raise ConfigError(
                f"NumberMatch tolerance must be a finite number >= 0, got {tolerance!r}; "
                "e.g. NumberMatch(0.01) or 'number:0.01'"
            )
        self.tolerance = float(tolerance)
        self.relative = bool(relative)
        if not self.tolerance:
            self.name = "number"
        else:
            self.name = f"number:{self.tolerance * 100:g}%" if relative else f"number:{tolerance:g}"

    def _params(self) -> tuple[Any, ...]:
        return (self.tolerance, self.relative)

    def key(self, answer: Answer) -> Hashable | None:
        value = answer.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) if math.isfinite(value) else None
        return _last_number(_text(answer))

    def _keys_agree(self, candidate: Any, reference: Any) -> bool:
        diff = abs(candidate - reference)
        if self.relative:
            return diff <= self.tolerance * max(abs(candidate), abs(reference))
        return diff <= self.tolerance


# -- JSON -----------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json5?|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()
_NOTHING = object()  # "no JSON found"; None is a valid JSON value


def _canonical(value: Any) -> Any:
    """Structure with integral floats turned into ints, so ``1 == 1.0`` after serialising."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _canonical_json(value: Any) -> str:
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parse_json(text: str) -> Any:
    """JSON from the whole text, a fenced block, or the first ``{...}``/``[...]`` span."""
    stripped = text.strip()
    if not stripped:
        return _NOTHING
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for block in _FENCE.findall(text):
        try:
            return json.loads(block)
        except ValueError:
            continue
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = _DECODER.raw_decode(text, match.start())
        except ValueError:
            continue
        return value
    return _NOTHING


class JsonMatch(_KeyComparator):
    """Compares answers as JSON values: key order, whitespace and ``1`` vs ``1.0`` don't matter.

    A dict or list in ``Answer.value`` is used directly; otherwise the text is parsed as JSON,
    else the first fenced block (```` ```json ````), else the first ``{...}``/``[...]`` span.
    """

    __slots__ = ()
    name = "json"

    def key(self, answer: Answer) -> Hashable | None:
        if isinstance(answer.value, dict | list):
            return _canonical_json(answer.value)
        parsed = _parse_json(_text(answer))
        return None if parsed is _NOTHING else _canonical_json(parsed)


# -- tool calls -----------------------------------------------------------------------------------


def _call_signature(call: Any) -> tuple[str, str] | None:
    """``(name, canonical args)`` of one tool call, OpenAI (``function``) shapes included."""
    if not isinstance(call, dict):
        return None
    function = call.get("function")
    source = function if isinstance(function, dict) else call
    name = source.get("name")
    if not isinstance(name, str) or not name:
        return None
    args = source.get("args", source.get("arguments"))
    if args is None or (isinstance(args, str) and not args.strip()):
        args = {}
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return name, "raw:" + args.strip()  # unparseable: equal only to the same string
    return name, _canonical_json(args)


class ToolCallMatch(_KeyComparator):
    """Agent steps agree when they call the same tools with the same arguments, in any order.

    ``Answer.value`` holds the tool calls: a list of dicts with ``name`` and ``args`` or
    ``arguments`` (a dict or a JSON string; OpenAI's ``{"function": {...}}`` shape works too).
    Calls are compared as a multiset of ``(name, canonical JSON args)``. An answer with tool calls
    never agrees with one without; two answers without tool calls are compared like
    :class:`ExactMatch` on their text. A malformed call (no name) makes the key None.
    """

    __slots__ = ()
    name = "tool_calls"

    def key(self, answer: Answer) -> Hashable | None:
        calls = answer.value
        if isinstance(calls, dict) and "tool_calls" in calls:
            calls = calls["tool_calls"]
        if isinstance(calls, list | tuple) and calls:
            signatures = [_call_signature(call) for call in calls]
            if any(sig is None for sig in signatures):
                return None
            return ("tool_calls", tuple(sorted(signatures)))  # type: ignore[type-var]
        text = normalize_text(_text(answer))
        return ("text", text) if text else None


# -- user functions -------------------------------------------------------------------------------


def _wants_answers(fn: Callable[..., Any]) -> bool:
    """True when ``fn``'s first parameter is annotated as ``Answer``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params:
        return False
    annotation = params[0].annotation
    return annotation is Answer or annotation in ("Answer", "smart_core.Answer")


class CallableMatch:
    """Wraps a user function as a comparator.

    ``fn(candidate, reference) -> bool`` receives the two answers' texts (``""`` when missing)
    by default, or the two :class:`Answer` objects when ``answers=True`` — or when
    ``answers=None`` (the default) and ``fn``'s first parameter is annotated ``Answer``.
    Agreement is whatever ``fn`` returns (made a bool); exceptions from ``fn`` propagate so bugs
    surface. ``key`` is the normalised text, for display only.
    """

    __slots__ = ("answers", "fn", "name")

    def __init__(
        self, fn: Callable[[Any, Any], Any], name: str | None = None, *, answers: bool | None = None
    ) -> None:
        if not callable(fn):
            raise ConfigError(
                f"CallableMatch needs a function fn(candidate, reference) -> bool, got {fn!r}"
            )
        self.fn = fn
        self.answers = _wants_answers(fn) if answers is None else bool(answers)
        self.name = name or getattr(fn, "name", None) or getattr(fn, "__name__", None) or "callable"
        if not isinstance(self.name, str):
            self.name = "callable"

    def __call__(self, candidate: Answer, reference: Answer) -> bool:
        if self.answers:
            return bool(self.fn(candidate, reference))
        return bool(self.fn(_text(candidate), _text(reference)))

    def key(self, answer: Answer) -> Hashable | None:
        return normalize_text(_text(answer)) or None

    def __repr__(self) -> str:
        return f"CallableMatch({self.fn!r}, name={self.name!r})"


# -- parsing --------------------------------------------------------------------------------------

_FORMS = (
    "'exact', 'choice:A,B,C,D', 'regex:PATTERN', 'number', 'number:0.01' (absolute tolerance), "
    "'number:1%' (relative tolerance), 'json', 'tool_calls', a Comparator object, "
    "or a function fn(candidate, reference) -> bool"
)


def _parse_number(arg: str, spec: str) -> NumberMatch:
    arg = arg.strip()
    relative = arg.endswith("%")
    try:
        tolerance = float(arg.rstrip("%").strip())
    except ValueError:
        raise ConfigError(
            f"comparator {spec!r}: tolerance {arg!r} is not a number; "
            "use e.g. 'number:0.01' (absolute) or 'number:1%' (relative)"
        ) from None
    return NumberMatch(tolerance / 100 if relative else tolerance, relative=relative)


def parse_comparator(spec: str | Comparator | Callable[..., Any]) -> Comparator:
    """Turn a config value into a comparator: a spec string, a Comparator, or a plain function.

    Strings: ``exact``, ``choice:A,B,C,D``, ``regex:PATTERN`` (everything after the first colon,
    so patterns may contain colons), ``number``, ``number:0.01``, ``number:1%``, ``json``,
    ``tool_calls``. Names are case-insensitive.
    """
    if isinstance(spec, Comparator):
        return spec
    if isinstance(spec, str):
        head, sep, arg = spec.partition(":")
        kind = head.strip().lower().replace("-", "_")
        if kind == "regex" and sep:
            return RegexMatch(arg)
        if kind == "choice" and sep:
            return ChoiceMatch(arg.split(","))
        if kind == "number":
            return _parse_number(arg, spec) if sep else NumberMatch()
        if not sep and kind in _SIMPLE:
            return _SIMPLE[kind]()
        raise ConfigError(f"unknown comparator {spec!r}; valid forms: {_FORMS}")
    if callable(spec):
        return CallableMatch(spec)
    raise ConfigError(
        f"comparator must be a string, Comparator or function, got {spec!r}; {_FORMS}"
    )


_SIMPLE: dict[str, Callable[[], Comparator]] = {
    "exact": ExactMatch,
    "json": JsonMatch,
    "tool_calls": ToolCallMatch,
    "toolcalls": ToolCallMatch,
}
