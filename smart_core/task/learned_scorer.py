"""A learned cascade scorer: logistic regression trained on early probes, then frozen.

FrugalGPT trains its scorer and nothing bounds what it loses. Here a learned scorer is a
cascade step's judge like any other, so its route is measured on probes; the one new risk is
that the scorer was fit on the very probes that would then certify it (its in-sample agreement
is optimistic, and so would be the bound). So a learned scorer has two lives:

* **Untrained** (:class:`UntrainedScorer`, config ``scorer = "learned"``): a declaration, "fit
  me on the first ``train`` probes where this step's answer is known". A cascade holding one
  cannot be served or counted (:class:`~smart_core.engine.cascade.CascadeRoute` refuses it).
* **Frozen** (:class:`LearnedScorer`): fit once by :func:`fit_scorer` on examples that name the
  probes they came from (their request ids and their position, ``seq``, in the order requests
  were decided), and never changed after. Its name carries a fingerprint of its parameters and
  of its training set (``learned@3f9a0c1d2e``), so the cascade's route name, and with it every
  counter of its bound, is new at the freeze: no probe decided before the freeze can be on its
  books. A probe it was trained on that comes up for counting is refused
  (:class:`TrainingOverlapError`), loudly, never skipped.

Persistence: the frozen model is stored (:meth:`LearnedScorer.to_dict`, :meth:`save`,
:meth:`load`, config form ``learned:PATH.json``), not retrained on restart: a restarted process
rebuilds the same scorer, whose fingerprint is checked on load, and keeps counting under the
same name. A scorer fit again on other probes gets another fingerprint, hence another route
name and empty counters. (Fitting is deterministic too, so the same examples give the same
fingerprint, but that is not relied upon.)

Features of (request, answer): hashed word 1-2-grams of the request's text and of the answer's
text (:class:`~sklearn.feature_extraction.text.HashingVectorizer`), the answer's label as the
task's comparator extracts it (hashed), the log of the answer's length, and its summed token
logprob with a flag saying whether there was one. The label to learn: whether the step's answer
agreed with the reference's under the comparator, known on every probe.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, SmartError
from .answer import Answer
from .comparators import Comparator

__all__ = [
    "DEFAULT_TRAIN",
    "LearnedScorer",
    "ProbeExample",
    "TrainingOverlapError",
    "UntrainedScorer",
    "features",
    "fit_scorer",
    "is_untrained",
    "request_text",
]

#: Probes a learned scorer is fit on when the config names no number: enough for a
#: logistic regression over a few hundred active features to beat its base rate.
DEFAULT_TRAIN = 200

#: Feature layout (part of the fingerprint: a change of layout is a new scorer).
_REQUEST_FEATURES = 2**12
_ANSWER_FEATURES = 2**10
_LABEL_FEATURES = 2**5
_DENSE = ("log_length", "logprob", "has_logprob")
_LAYOUT = f"req{_REQUEST_FEATURES}+ans{_ANSWER_FEATURES}+lab{_LABEL_FEATURES}+" + ",".join(_DENSE)
_LOGPROB_FLOOR = -50.0


class TrainingOverlapError(SmartError):
    """A learned scorer was about to be counted on a probe it was trained on: its bound would
    certify its in-sample agreement. Never caught by the engine (it is a setup error)."""


@dataclass(frozen=True, slots=True)
class ProbeExample:
    """One probe where a cascade step's answer and the reference's are both known.

    ``probe_id`` is the request's id as the router knows it (``request_id``) and ``seq`` its
    position in the order requests were decided (0 = first): the scorer remembers both, so it
    can refuse to be counted on them.
    """

    probe_id: str
    seq: int
    request: Any
    answer: Answer
    reference: Answer


def request_text(request: Any) -> str:
    """The text of a request, provider-neutral: a string; a list of ``{"role", "content"}``
    messages (contents joined); an object or mapping with ``input``/``text``/``content``
    (a replayed item's ``input``); else its JSON form. ``None`` is empty."""
    if request is None:
        return ""
    if isinstance(request, str):
        return request
    if isinstance(request, Mapping):
        for key in ("input", "text", "content", "prompt"):
            if key in request:
                return request_text(request[key])
        if "messages" in request:
            return request_text(request["messages"])
    for attr in ("input", "text", "content"):
        if hasattr(request, attr) and not callable(getattr(request, attr)):
            return request_text(getattr(request, attr))
    if isinstance(request, list | tuple):
        return "\n".join(request_text(m) for m in request)
    try:
        return json.dumps(request, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(request)


_VECTORIZERS: dict[int, Any] = {}


def _vectorizer(n_features: int) -> Any:
    found = _VECTORIZERS.get(n_features)
    if found is None:
        try:
            from sklearn.feature_extraction.text import HashingVectorizer
        except ImportError as exc:  # pragma: no cover - the extra is part of the dev install
            raise ConfigError(
                "a learned scorer needs scikit-learn: pip install 'smart-llm[learned]'"
            ) from exc
        found = HashingVectorizer(
            n_features=n_features,
            ngram_range=(1, 2),
            alternate_sign=False,
            norm="l2",
            lowercase=True,
        )
        _VECTORIZERS[n_features] = found
    return found


def _logprob(answer: Answer) -> float | None:
    from .scorers import _logprobs  # the one reader of Answer.logprobs / value / raw

    values = _logprobs(answer)
    return max(sum(values), _LOGPROB_FLOOR) if values else None


def features(
    requests: Sequence[Any], answers: Sequence[Answer], comparator: Comparator
) -> np.ndarray:
    """The feature matrix (one dense row per (request, answer) pair; see the module doc)."""
    req = _vectorizer(_REQUEST_FEATURES).transform([request_text(r) for r in requests])
    ans = _vectorizer(_ANSWER_FEATURES).transform([a.text or "" for a in answers])
    labels = []
    dense = np.zeros((len(answers), len(_DENSE)))
    for i, answer in enumerate(answers):
        try:
            key = comparator.key(answer)
        except Exception:  # an answer the comparator cannot read has no label
            key = None
        labels.append(f"label_{key}" if key is not None else "label_none")
        dense[i, 0] = math.log1p(len(answer.text or ""))
        lp = _logprob(answer)
        if lp is not None:
            dense[i, 1] = lp
            dense[i, 2] = 1.0
    lab = _vectorizer(_LABEL_FEATURES).transform(labels)
    return np.hstack([req.toarray(), ans.toarray(), lab.toarray(), dense])


class UntrainedScorer:
    """A learned scorer before its training: ``scorer = "learned"`` (``learned:train=N``).

    It scores nothing: a cascade holding it is only a plan, turned into a servable one by
    :func:`fit_scorer` on the first ``train`` probes (in batch mode: the first items of the
    uniformly random order; see docs/cascades.md, "Learned scorer")."""

    __slots__ = ("name", "needs", "reads_request", "train")

    frozen = False

    def __init__(self, train: int = DEFAULT_TRAIN) -> None:
        if not isinstance(train, int) or isinstance(train, bool) or train < 10:
            raise ConfigError(
                f"learned scorer: train must be a whole number of probes >= 10, got {train!r}; "
                f"e.g. scorer='learned:train={DEFAULT_TRAIN}'"
            )
        self.train = train
        self.name = "learned"
        self.needs: tuple[str, ...] = ()
        self.reads_request = True

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        raise ConfigError(
            "a learned scorer must be trained and frozen before it scores anything: fit it on "
            "early probes with smart_core.task.learned_scorer.fit_scorer(...)"
        )

    def spec(self) -> str:
        return "learned" if self.train == DEFAULT_TRAIN else f"learned:train={self.train}"

    def __repr__(self) -> str:
        return f"UntrainedScorer(train={self.train})"


class LearnedScorer:
    """A frozen logistic regression scoring the chance that a step's answer agrees with the
    reference's. Built by :func:`fit_scorer` or :meth:`from_dict`; immutable after."""

    __slots__ = (
        "_coef",
        "_intercept",
        "fingerprint",
        "name",
        "needs",
        "reads_request",
        "train_size",
        "trained_ids",
        "trained_through",
    )

    frozen = True

    def __init__(
        self,
        coef: Sequence[float] | np.ndarray,
        intercept: float,
        *,
        trained_ids: Iterable[str],
        trained_through: int,
    ) -> None:
        coef = np.asarray(coef, dtype=np.float64)
        width = _REQUEST_FEATURES + _ANSWER_FEATURES + _LABEL_FEATURES + len(_DENSE)
        if coef.shape != (width,):
            raise ConfigError(
                f"learned scorer: expected {width} coefficients for layout {_LAYOUT}, got "
                f"{coef.shape}; refit the scorer with this version of smart"
            )
        coef.setflags(write=False)
        self._coef = coef
        self._intercept = float(intercept)
        self.trained_ids = frozenset(str(i) for i in trained_ids)
        self.trained_through = int(trained_through)
        self.train_size = len(self.trained_ids)
        self.fingerprint = _fingerprint(coef, self._intercept, self.trained_ids, trained_through)
        self.name = f"learned@{self.fingerprint[:10]}"
        self.needs: tuple[str, ...] = ()
        self.reads_request = True

    def __call__(
        self,
        answer: Answer,
        others: Mapping[str, Answer],
        comparator: Comparator,
        request: Any = None,
    ) -> float:
        return float(self.predict([request], [answer], comparator)[0])

    def predict(
        self, requests: Sequence[Any], answers: Sequence[Answer], comparator: Comparator
    ) -> np.ndarray:
        """The chance of agreement the model gives each (request, answer)."""
        z = features(requests, answers, comparator) @ self._coef + self._intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))

    def check_counts(self, probe_id: str | None = None, seq: int | None = None) -> None:
        """Refuse to count a probe this scorer was trained on, or one decided at or before
        its training cut (``seq`` <= ``trained_through``): raises :class:`TrainingOverlapError`."""
        if probe_id is not None and str(probe_id) in self.trained_ids:
            raise TrainingOverlapError(
                f"{self.name}: probe {probe_id!r} was in this scorer's training set; a route "
                "judged by it may count only probes decided after its freeze. Fit it on early "
                "probes and serve it on the rest (a new request id per request)."
            )
        if seq is not None and seq <= self.trained_through:
            raise TrainingOverlapError(
                f"{self.name}: probe at position {seq} was decided at or before the training "
                f"cut ({self.trained_through}); only probes decided after the freeze may count "
                "for this scorer's route."
            )

    def spec(self) -> str:
        return f"learned@{self.fingerprint}"

    def to_dict(self) -> dict[str, Any]:
        """The frozen model as plain data (JSON): what :meth:`from_dict` rebuilds it from."""
        nonzero = np.flatnonzero(self._coef)
        return {
            "kind": "smart.learned_scorer",
            "layout": _LAYOUT,
            "fingerprint": self.fingerprint,
            "intercept": self._intercept,
            "coef": {str(int(i)): float(self._coef[i]) for i in nonzero},
            "trained_ids": sorted(self.trained_ids),
            "trained_through": self.trained_through,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LearnedScorer:
        """The scorer :meth:`to_dict` wrote; ConfigError if it is not one, was written for
        another feature layout, or its parameters no longer match its fingerprint."""
        if not isinstance(data, Mapping) or data.get("kind") != "smart.learned_scorer":
            raise ConfigError("learned scorer: not a saved learned scorer (kind is missing)")
        if data.get("layout") != _LAYOUT:
            raise ConfigError(
                f"learned scorer: saved for feature layout {data.get('layout')!r}, this version "
                f"uses {_LAYOUT!r}; refit it"
            )
        width = _REQUEST_FEATURES + _ANSWER_FEATURES + _LABEL_FEATURES + len(_DENSE)
        coef = np.zeros(width)
        for index, value in dict(data.get("coef") or {}).items():
            coef[int(index)] = float(value)
        scorer = cls(
            coef,
            float(data["intercept"]),
            trained_ids=data.get("trained_ids") or (),
            trained_through=int(data["trained_through"]),
        )
        if scorer.fingerprint != data.get("fingerprint"):
            raise ConfigError(
                f"learned scorer: the saved parameters hash to {scorer.fingerprint[:10]}, not to "
                f"the saved fingerprint {str(data.get('fingerprint'))[:10]}; the file was "
                "changed after the freeze, refit the scorer instead of editing it"
            )
        return scorer

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> LearnedScorer:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"learned scorer {str(path)!r}: cannot read it ({exc})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"learned scorer {str(path)!r}: not JSON ({exc.msg})") from None
        return cls.from_dict(data)

    def __reduce__(self) -> tuple[Any, ...]:  # worker processes get the same frozen model
        return (LearnedScorer.from_dict, (self.to_dict(),))

    def __repr__(self) -> str:
        return f"LearnedScorer({self.name!r}, trained on {self.train_size} probes)"


def _fingerprint(
    coef: np.ndarray, intercept: float, trained_ids: frozenset[str], trained_through: int
) -> str:
    h = hashlib.sha256()
    h.update(_LAYOUT.encode())
    h.update(np.ascontiguousarray(coef, dtype="<f8").tobytes())
    h.update(float(intercept).hex().encode())
    h.update(str(trained_through).encode())
    for probe_id in sorted(trained_ids):
        h.update(b"\x00" + probe_id.encode())
    return h.hexdigest()


def fit_scorer(
    examples: Sequence[ProbeExample], comparator: Comparator, *, regularization: float = 1.0
) -> LearnedScorer:
    """Fit and freeze a scorer on ``examples`` (deterministic: same examples, same scorer).

    The label of each example is whether its answer agreed with the reference's under
    ``comparator``. When every example agrees (or every one differs) there is nothing to
    separate: the scorer is the constant (agreed + 1) / (n + 2).
    """
    if not examples:
        raise ConfigError("fit_scorer: no examples; a learned scorer needs early probes to fit on")
    ordered = sorted(examples, key=lambda e: e.seq)
    ids = [str(e.probe_id) for e in ordered]
    if len(set(ids)) != len(ids):
        raise ConfigError("fit_scorer: two examples share a probe_id; each probe is one example")
    labels = np.array([1 if _agrees(comparator, e.answer, e.reference) else 0 for e in ordered])
    width = _REQUEST_FEATURES + _ANSWER_FEATURES + _LABEL_FEATURES + len(_DENSE)
    if labels.min() == labels.max():
        rate = (labels.sum() + 1.0) / (len(labels) + 2.0)
        coef, intercept = np.zeros(width), math.log(rate / (1.0 - rate))
    else:
        from sklearn.linear_model import LogisticRegression

        x = features([e.request for e in ordered], [e.answer for e in ordered], comparator)
        model = LogisticRegression(C=regularization, max_iter=2000, solver="lbfgs")
        model.fit(x, labels)
        coef, intercept = model.coef_[0], float(model.intercept_[0])
    return LearnedScorer(coef, intercept, trained_ids=ids, trained_through=ordered[-1].seq)


def _agrees(comparator: Comparator, answer: Answer, reference: Answer) -> bool:
    try:
        return bool(comparator(answer, reference))
    except Exception:  # as on a probe: an answer that cannot be compared differs
        return False


def is_untrained(scorer: Any) -> bool:
    """Whether ``scorer`` is a learned scorer not yet fit (a cascade holding it is a plan)."""
    return isinstance(scorer, UntrainedScorer)


def parse_learned(arg: str) -> UntrainedScorer | LearnedScorer:
    """``learned`` (train on the default number of probes), ``learned:train=N``, or
    ``learned:PATH.json`` (a frozen scorer saved by :meth:`LearnedScorer.save`)."""
    arg = arg.strip()
    if not arg:
        return UntrainedScorer()
    if arg.startswith("train="):
        try:
            return UntrainedScorer(int(arg.removeprefix("train=")))
        except ValueError:
            raise ConfigError(
                f"scorer 'learned:{arg}': train must be a whole number, e.g. 'learned:train=200'"
            ) from None
    return LearnedScorer.load(arg)
