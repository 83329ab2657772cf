"""Scorers: how a cascade step judges its own answer before the user sees it.

A cascade (FrugalGPT) asks a cheap model first and keeps its answer only when a *scorer* says
the answer is likely to agree with the reference's; otherwise it escalates. None of the scorers
here needs training: each reads what the step's answer (and, for consistency, a second model's
answer to the same request) already says. Whether a scorer is any good is never assumed: the
cascade is a route like any other, and its agreement with the reference is measured on probes
(docs/guarantee.md, "Cascades").

A scorer is pure: ``scorer(answer, others, comparator) -> float``, where ``others`` holds the
answers of the models it ``needs`` and ``comparator`` is the task's, so "the same answer" means
what the guarantee means by it. A scorer with a true ``reads_request`` is also given the request
(``request=``: what the caller passed, provider-neutral; see :func:`score`). A step accepts when
the score reaches its threshold.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from .answer import Answer
from .comparators import Comparator

__all__ = [
    "AgreementScorer",
    "CallableScorer",
    "LabelScorer",
    "LogprobScorer",
    "Scorer",
    "parse_scorer",
    "score",
    "wants_logprobs",
]


@runtime_checkable
class Scorer(Protocol):
    """Judges a cascade step's answer; higher means more likely to agree with the reference."""

    #: Short, stable name used in route names (``label=A``, ``agree``).
    name: str
    #: Models whose answers to the same request the scorer reads besides the step's own.
    needs: tuple[str, ...]

    def __call__(
        self, answer: Answer, others: Mapping[str, Answer], comparator: Comparator
    ) -> float: ...

    def spec(self) -> str:
        """The scorer as a config string (``label:A``, ``agree:MODEL``), for TOML and stores."""
        ...


class LabelScorer:
    """Accept only answers whose value, as the task's comparator extracts it, is in ``labels``.

    A classifier is often reliable on some labels and not on others (a cheap model saying "no
    bug" is usually right, "bug" less so): a cascade that keeps the cheap model's reliable labels
    and escalates the rest can agree far more often than the model alone, at a fraction of the
    reference's price.
    """

    __slots__ = ("labels", "name", "needs")

    def __init__(self, labels: Iterable[str] | str) -> None:
        if isinstance(labels, str):
            labels = labels.split(",")
        cleaned = tuple(dict.fromkeys(str(lab).strip() for lab in labels if str(lab).strip()))
        if not cleaned:
            raise ConfigError(
                "LabelScorer needs at least one label to accept, e.g. LabelScorer(['A']) or "
                "scorer='label:A'"
            )
        self.labels = cleaned
        self.name = "label=" + "|".join(cleaned)
        self.needs: tuple[str, ...] = ()

    def __call__(
        self, answer: Answer, others: Mapping[str, Answer], comparator: Comparator
    ) -> float:
        key = comparator.key(answer)
        return 1.0 if key is not None and key in self.labels else 0.0

    def spec(self) -> str:
        return "label:" + ",".join(self.labels)

    def __repr__(self) -> str:
        return f"LabelScorer({list(self.labels)!r})"


class AgreementScorer:
    """Accept when a second model's answer agrees with the step's under the task's comparator
    (self-consistency across models); the step's own answer is the one served."""

    __slots__ = ("model", "name", "needs")

    def __init__(self, model: str) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(
                "AgreementScorer needs the name of the second model, e.g. "
                "AgreementScorer('claude-haiku-4-5') or scorer='agree:claude-haiku-4-5'"
            )
        self.model = model.strip()
        self.name = "agree"
        self.needs = (self.model,)

    def __call__(
        self, answer: Answer, others: Mapping[str, Answer], comparator: Comparator
    ) -> float:
        return 1.0 if comparator(answer, others[self.model]) else 0.0

    def spec(self) -> str:
        return f"agree:{self.model}"

    def __repr__(self) -> str:
        return f"AgreementScorer({self.model!r})"


class LogprobScorer:
    """The probability the model gave its own answer: ``exp`` of the summed token logprobs.

    Reads ``Answer.logprobs`` (what the adapters and providers fill in when a step's model is
    asked for logprobs: its scorer says so with ``wants_logprobs``), else a ``logprobs`` list in
    the answer's ``value`` or an OpenAI Chat Completions response in its ``raw``. An answer
    without them scores 0, so the step escalates rather than trusting an unknown confidence
    (a model whose API has no logprobs, e.g. Anthropic's, never passes such a step).
    """

    __slots__ = ("name", "needs", "wants_logprobs")

    def __init__(self) -> None:
        self.name = "logprob"
        self.needs: tuple[str, ...] = ()
        self.wants_logprobs = True

    def __call__(
        self, answer: Answer, others: Mapping[str, Answer], comparator: Comparator
    ) -> float:
        values = _logprobs(answer)
        if not values:
            return 0.0
        return math.exp(sum(values))

    def spec(self) -> str:
        return "logprob"

    def __repr__(self) -> str:
        return "LogprobScorer()"


def _logprobs(answer: Answer) -> list[float]:
    if answer.logprobs:
        return [float(x) for x in answer.logprobs]
    for source in (answer.value, answer.raw):
        found = _logprobs_in(source)
        if found:
            return found
    return []


def _logprobs_in(source: Any) -> list[float]:
    if isinstance(source, Mapping) and isinstance(source.get("logprobs"), list):
        return [float(x) for x in source["logprobs"] if isinstance(x, int | float)]
    choices = getattr(source, "choices", None)  # an OpenAI ChatCompletion
    if choices:
        content = getattr(getattr(choices[0], "logprobs", None), "content", None) or []
        return [float(t.logprob) for t in content if getattr(t, "logprob", None) is not None]
    return []


class CallableScorer:
    """A user function scoring a step's answer: ``fn(answer) -> float`` or
    ``fn(request, answer) -> float`` (a verifier that checks the answer against the question, a
    format check). Which one is read off the function's signature: two required positional
    parameters (or ``*args``) get the request too.

    ``request`` is what the caller passed, provider-neutral: a list of ``{"role", "content"}``
    messages from ``SmartChatModel`` / ``SmartLLM``, the request given to
    ``SmartRouter.run``/``arun``; ``None`` when the caller gave none (``smart replay``). The same
    request is given on a probe, so a cascade is judged on what serving it would have done.
    """

    __slots__ = ("fn", "name", "needs", "reads_request")

    def __init__(self, fn: Callable[..., float], name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigError(
                f"CallableScorer needs a function fn(answer) or fn(request, answer) returning a "
                f"float, got {fn!r}"
            )
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or "score"
        self.needs: tuple[str, ...] = ()
        self.reads_request = _arity(fn) == 2

    def __call__(
        self,
        answer: Answer,
        others: Mapping[str, Answer],
        comparator: Comparator,
        request: Any = None,
    ) -> float:
        if self.reads_request:
            return float(self.fn(request, answer))
        return float(self.fn(answer))

    def spec(self) -> str:
        return f"callable:{self.name}"

    def __repr__(self) -> str:
        return f"CallableScorer({self.fn!r}, name={self.name!r})"


def _arity(fn: Callable[..., Any]) -> int:
    """1 for ``fn(answer)``, 2 for ``fn(request, answer)``; ConfigError for anything else."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: the simple form
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in positional if p.default is p.empty)
    if required in (1, 2):
        return required
    if required == 0 and positional:
        return min(len(positional), 2)
    name = getattr(fn, "__name__", repr(fn))
    raise ConfigError(
        f"scorer {name}: a function scorer takes (answer) or (request, answer), but this one "
        f"needs {required} arguments; e.g. def my_scorer(request, answer) -> float"
    )


def score(
    scorer: Scorer,
    answer: Answer,
    others: Mapping[str, Answer],
    comparator: Comparator,
    request: Any = None,
) -> float:
    """``scorer``'s score of ``answer``, handing it the request only if it reads it (so a
    Scorer written for the three-argument form keeps working)."""
    if getattr(scorer, "reads_request", False):
        return float(scorer(answer, others, comparator, request=request))  # type: ignore[call-arg]
    return float(scorer(answer, others, comparator))


def wants_logprobs(scorer: Any) -> bool:
    """Whether the step's model must be asked for token logprobs for ``scorer`` to judge it
    (a scorer says so with a true ``wants_logprobs`` attribute; others need nothing)."""
    return bool(getattr(scorer, "wants_logprobs", False))


_FORMS = (
    "'label:A,B' (accept these labels), 'agree:MODEL' (a second model agrees), 'logprob', "
    "'learned' / 'learned:train=N' (fit on the first N probes, then frozen), "
    "'learned:PATH.json' (a frozen learned scorer)"
)


def parse_scorer(spec: Any) -> Scorer:
    """A scorer from its config form: a Scorer, a function ``fn(answer) -> float``, or a string
    ``label:A,B``, ``agree:MODEL``, ``logprob`` or ``learned[:train=N | :PATH.json]``
    (:mod:`.learned_scorer`)."""
    if isinstance(spec, Scorer):
        return spec
    if isinstance(spec, str):
        head, sep, arg = spec.partition(":")
        kind = head.strip().lower()
        if kind == "label" and sep:
            return LabelScorer(arg)
        if kind == "agree" and sep:
            return AgreementScorer(arg)
        if kind == "logprob" and not sep:
            return LogprobScorer()
        if kind == "learned":
            from .learned_scorer import parse_learned  # scikit-learn only when asked for

            return parse_learned(arg)
        raise ConfigError(f"unknown scorer {spec!r}; valid forms: {_FORMS}, or a function")
    if callable(spec):
        return CallableScorer(spec)
    raise ConfigError(f"scorer must be a string, Scorer or function, got {spec!r}; {_FORMS}")
