"""Train-then-freeze for cascades with a learned scorer: the first probes fit it, the rest count.

A cascade declared with ``scorer = "learned"`` is a plan (docs/cascades.md, "Learned scorer"):
its route does not exist until its scorer is fit and frozen. This module turns the plan into a
route from a training stage's probes, each a request with the reference's answer and the step
models' answers, in the order the requests were decided:

* :func:`training_size`: how many probes the plan asks for (the largest ``train`` of its
  untrained steps);
* :func:`freeze_cascades` (:func:`fit_steps`, then :func:`apply_fits`): every untrained step
  fit on the first ``train`` of those probes that know its model's answer
  (:func:`~smart_core.task.learned_scorer.fit_scorer`) and frozen; each such cascade gets a name
  carrying its scorers' fingerprints, so the counters of its bound start empty, and any probe it
  was trained on is refused if it ever comes up for counting.

In batch mode (a fixed population in a uniformly random order) the training stage is the first
items of the order and the batch SMART then certifies is the rest: given the training items, the
rest is a uniformly ordered population the scorer never saw, which is all the finite-population
bound asks (docs/guarantee.md, "Learned scorers"). ``smart replay`` runs it so per order;
online, :mod:`.scorer_training` runs it on a router's early probes (:func:`fit_steps`, then
:func:`apply_fits` with the fits the store says every process serves).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError
from ..task.answer import Answer
from ..task.cascades import Cascade, CascadeStep
from ..task.comparators import Comparator
from ..task.learned_scorer import LearnedScorer, ProbeExample, fit_scorer, is_untrained

__all__ = [
    "Fits",
    "TrainingProbe",
    "apply_fits",
    "fit_steps",
    "fits_fingerprint",
    "fits_from_json",
    "fits_to_json",
    "freeze_cascades",
    "has_untrained",
    "training_models",
    "training_size",
]


@dataclass(frozen=True, slots=True)
class TrainingProbe:
    """One request of the training stage: its id, the request, and every answer collected
    (the reference's and each step model's, by model name)."""

    probe_id: str
    request: Any
    answers: Mapping[str, Answer]


def has_untrained(cascades: Iterable[Cascade]) -> bool:
    """Whether any of ``cascades`` has a learned step not fit yet."""
    return any(is_untrained(s.scorer) for c in cascades for s in c.steps)


def training_size(cascades: Iterable[Cascade]) -> int:
    """Probes the training stage needs: the largest ``train`` among the untrained steps."""
    return max(
        (s.scorer.train for c in cascades for s in c.steps if is_untrained(s.scorer)), default=0
    )


def training_models(cascades: Iterable[Cascade]) -> tuple[str, ...]:
    """The models the training stage calls beside the reference (the learned steps' models)."""
    found = (s.model for c in cascades for s in c.steps if is_untrained(s.scorer))
    return tuple(dict.fromkeys(found))


def freeze_cascades(
    cascades: Sequence[Cascade],
    probes: Sequence[TrainingProbe],
    reference: str,
    comparator: Comparator,
) -> list[Cascade]:
    """``cascades`` with every untrained learned step fit on the first ``train`` of ``probes``
    (in decision order; ``seq`` is a probe's index there) and frozen; others unchanged."""
    return apply_fits(cascades, fit_steps(cascades, probes, reference, comparator))


#: The frozen scorers of one training stage, by (step model, ``train``): cascades whose
#: learned steps call the same model with the same ``train`` share one fit.
Fits = dict[tuple[str, int], LearnedScorer]


def fit_steps(
    cascades: Sequence[Cascade],
    probes: Sequence[TrainingProbe],
    reference: str,
    comparator: Comparator,
) -> Fits:
    """One frozen scorer per (model, ``train``) among the untrained steps of ``cascades``, fit
    on the first ``train`` of ``probes`` (in decision order).

    A probe without the step model's answer (its call failed, or it was not called) is left
    out of that step's training set: there is nothing to learn from it, and it can never count
    for the frozen route anyway (it was decided before the freeze).
    """
    fits: Fits = {}
    for cascade in cascades:
        for step in cascade.steps:
            if not is_untrained(step.scorer):
                continue
            key = (step.model, step.scorer.train)
            if key in fits:
                continue
            known = [p for p in probes if isinstance(p.answers.get(step.model), Answer)]
            examples = [
                ProbeExample(p.probe_id, i, p.request, p.answers[step.model], p.answers[reference])
                for i, p in enumerate(known[: step.scorer.train])
            ]
            fits[key] = fit_scorer(examples, comparator)
    return fits


def apply_fits(
    cascades: Sequence[Cascade], fits: Mapping[tuple[str, int], LearnedScorer]
) -> list[Cascade]:
    """``cascades`` with each untrained step's scorer replaced by its fit in ``fits``; a cascade
    gets a new name carrying its scorers' fingerprints, so the counters of its bound start
    empty (a name read off the steps is re-read; a declared name gets them appended)."""
    out = []
    for cascade in cascades:
        if not any(is_untrained(s.scorer) for s in cascade.steps):
            out.append(cascade)
            continue
        steps = [
            CascadeStep(s.model, fits[(s.model, s.scorer.train)], s.threshold)
            if is_untrained(s.scorer)
            else s
            for s in cascade.steps
        ]
        if cascade.name == Cascade(cascade.steps).name:  # a name read off the steps: re-read it
            out.append(Cascade(steps))
        else:  # a declared name: the fingerprints are appended, so the counters start anew
            tags = "".join(f"@{s.scorer.fingerprint[:10]}" for s in steps if _frozen(s))
            out.append(replace(cascade, steps=tuple(steps), name=cascade.name + tags))
    return out


def fits_to_json(fits: Mapping[tuple[str, int], LearnedScorer]) -> str:
    """``fits`` as JSON (what a store keeps so every process, and a restarted one, serves the
    same frozen scorers): :func:`fits_from_json` rebuilds them, fingerprints checked."""
    rows = [{"model": m, "train": n, "scorer": s.to_dict()} for (m, n), s in sorted(fits.items())]
    return json.dumps(rows, sort_keys=True)


def fits_from_json(text: str) -> Fits:
    """The fits :func:`fits_to_json` wrote; ConfigError if they are not that."""
    try:
        rows = json.loads(text)
        return {
            (str(r["model"]), int(r["train"])): LearnedScorer.from_dict(r["scorer"]) for r in rows
        }
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"stored learned scorers: not readable ({exc})") from None


def fits_fingerprint(fits: Mapping[tuple[str, int], LearnedScorer]) -> str:
    """One fingerprint for a training stage's fits (hex): its scorers' fingerprints, by key."""
    h = hashlib.sha256()
    for (model, train), scorer in sorted(fits.items()):
        h.update(f"{model}\x00{train}\x00{scorer.fingerprint}\x00".encode())
    return h.hexdigest()


def _frozen(step: CascadeStep) -> bool:
    return hasattr(step.scorer, "fingerprint")
