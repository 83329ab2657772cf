"""Train-then-freeze for cascades with a learned scorer: the first probes fit it, the rest count.

A cascade declared with ``scorer = "learned"`` is a plan (docs/cascades.md, "Learned scorer"):
its route does not exist until its scorer is fit and frozen. This module turns the plan into a
route from a training stage's probes, each a request with the reference's answer and the step
models' answers, in the order the requests were decided:

* :func:`training_size`: how many probes the plan asks for (the largest ``train`` of its
  untrained steps);
* :func:`freeze_cascades`: every untrained step fit on the first ``train`` of those probes
  (:func:`~smart_core.task.learned_scorer.fit_scorer`) and frozen; each such cascade gets a name
  carrying its scorers' fingerprints, so the counters of its bound start empty, and any probe it
  was trained on is refused if it ever comes up for counting.

In batch mode (a fixed population in a uniformly random order) the training stage is the first
items of the order and the batch SMART then certifies is the rest: given the training items, the
rest is a uniformly ordered population the scorer never saw, which is all the finite-population
bound asks (docs/guarantee.md, "Learned scorers"). ``smart replay`` runs it so per order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..task.answer import Answer
from ..task.cascades import Cascade, CascadeStep
from ..task.comparators import Comparator
from ..task.learned_scorer import ProbeExample, fit_scorer, is_untrained

__all__ = ["TrainingProbe", "freeze_cascades", "has_untrained", "training_models", "training_size"]


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
    (in decision order; ``seq`` is a probe's index there) and frozen; others unchanged.

    A probe without the step model's answer (its call failed) is left out of that step's
    training set: there is nothing to learn from it, and it can never count for the frozen
    route anyway (it was decided before the freeze).
    """
    fitted: dict[tuple[str, int], Any] = {}  # one fit per (model, train): cascades share it
    out = []
    for cascade in cascades:
        steps = []
        renamed = False
        for step in cascade.steps:
            if not is_untrained(step.scorer):
                steps.append(step)
                continue
            key = (step.model, step.scorer.train)
            if key not in fitted:
                examples = [
                    ProbeExample(
                        p.probe_id, seq, p.request, p.answers[step.model], p.answers[reference]
                    )
                    for seq, p in enumerate(probes[: step.scorer.train])
                    if isinstance(p.answers.get(step.model), Answer)
                ]
                fitted[key] = fit_scorer(examples, comparator)
            steps.append(CascadeStep(step.model, fitted[key], step.threshold))
            renamed = True
        if not renamed:
            out.append(cascade)
            continue
        if cascade.name == Cascade(cascade.steps).name:  # a name read off the steps: re-read it
            out.append(Cascade(steps))
        else:  # a declared name: the fingerprints are appended, so the counters start anew
            tags = "".join(f"@{s.scorer.fingerprint[:10]}" for s in steps if _frozen(s))
            out.append(replace(cascade, steps=tuple(steps), name=cascade.name + tags))
    return out


def _frozen(step: CascadeStep) -> bool:
    return hasattr(step.scorer, "fingerprint")
