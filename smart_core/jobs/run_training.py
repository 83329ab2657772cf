"""``smart run`` with learned cascades: the run's first items train their scorers, the rest is the
batch SMART certifies.

A cascade declared with an untrained learned scorer (``scorer = "learned"``) is a plan until its
scorer is fit (docs/cascades.md, "Learned scorer"). A batch's plan cannot make room for a route
that opens halfway, so a run fits it first, in a *training stage*, as ``smart replay`` does per
order (docs/guarantee.md, "Learned scorers", step 2):

* **Which items train** is drawn before any call, from the run's key and seed alone (blind to
  what any model answers): ``train`` items (the largest ``train`` of the learned steps) taken
  uniformly from the run. Given them, the rest is a uniformly ordered population the scorer never
  saw, the setting the batch's finite-population bound asks for.
* **Each training item** is answered by the reference, with every learned step's model called
  beside it (paid, counted as probe spend). It is done only once all of them answered: a failed
  call fails the item, which is retried like any other (answers already saved are reused), so
  the fit always sees the same items, whatever a resume interrupted.
* **Its counters** are the task's money counters and ``trained`` (``keys.TRAINED``), never the
  batch's requests or probes: the policy's batch is the rest, ``batch_size = items - train``,
  with a budget of epsilon of it. The training items differ nowhere, so the count the batch
  certifies bounds the whole run's. The ledger adds them back.
* **The freeze.** Once every training item is done, the scorers are fit on them in training
  order and the fit is claimed in the store exactly as online (``scorer_training.claim_fits``):
  a resumed run serves the claimed fit and never refits. Only then does the run's router start,
  and it serves the frozen cascades like any route, their counters empty.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.learned_training import (
    Fits,
    TrainingProbe,
    fit_steps,
    training_models,
    training_size,
)
from ..engine.scorer_training import claim_fits, stored_fits, training_plan
from ..errors import ConfigError, SmartError
from ..policy.certificate import Certificate
from ..stores import Store
from ..task.answer import Answer
from ..task.cascades import Cascade
from ..task.config import SmartConfig
from .batch_input import BatchItem

__all__ = ["TrainingStage", "training_stage"]


@dataclass(frozen=True, slots=True)
class TrainingStage:
    """The training stage of one run: the cascades it fits, the items it answers (in training
    order) and the models each of them calls (the reference first)."""

    declared: tuple[Cascade, ...]
    item_ids: tuple[str, ...]
    models: tuple[str, ...]

    @property
    def plan(self) -> str:
        """The id the freeze is claimed under (``scorer_training.training_plan``)."""
        return training_plan(self.declared)

    def batch_config(self, config: SmartConfig) -> SmartConfig:
        """The config of the batch certified after the stage: the rest of the run."""
        return config.replace(batch_size=config.batch_size - len(self.item_ids))

    def certificate(self, config: SmartConfig) -> Certificate:
        """What a training item's answer carries: the reference's, promised nothing beyond it
        (it differs nowhere); the budget is the batch's, certified after the stage."""
        size = config.batch_size - len(self.item_ids)
        return Certificate.of_reference(
            config.task,
            config.reference.name,
            probe=True,
            epsilon=config.epsilon,
            delta=config.delta,
            method=config.method,
            mode="batch",
            effective_epsilon=0.0,
            batch_size=size,
            budget=config.epsilon * size,
            differing_at_most=0.0,
        )

    def done_record(
        self, item_id: str, answers: Mapping[str, Answer], config: SmartConfig
    ) -> tuple[str, dict[str, Any]]:
        """A training item's output line (the reference's answer, marked ``training``) and its
        timeline row, from its ``answers`` by model."""
        ref = config.reference.name
        cost = sum(config.cost_of(a) for a in answers.values())
        cert = self.certificate(config)
        line = {
            "id": item_id,
            "answer": answers[ref].text,
            "route": ref,
            "probe": True,
            "training": True,
            "cost": cost,
            "certificate": cert.to_dict(),
        }
        row = {
            "route": ref,
            "probe": True,
            "cost": cost,
            "ref_cost": config.cost_of(answers[ref]),
            "bound": 1.0,
            "mix": cert.mix,
            "effective_epsilon": 0.0,
            "differing_at_most": 0.0,
        }
        return json.dumps(line, default=str), row

    def answers_of(self, got: Sequence[Answer | BaseException]) -> dict[str, Answer]:
        """One training item's answers by model, from its calls in :attr:`models` order; the
        first failure is raised (the item is then retried, keeping what did answer)."""
        for answer in got:
            if isinstance(answer, BaseException):
                raise answer
        return dict(zip(self.models, got, strict=True))  # type: ignore[arg-type]

    def claim(
        self,
        store: Store,
        task: str,
        config: SmartConfig,
        prompts: Mapping[str, str],
        answers: Mapping[str, Mapping[str, Answer]],
    ) -> Fits:
        """The fits the run serves: those claimed in ``store`` for ``task`` if any (a resumed
        run), else fit on the training items' answers (``answers`` by item id, then model) and
        claimed. SmartError if the claim cannot be read back."""
        fits = stored_fits(store, task, self.plan)
        if fits is not None:
            return fits
        probes = [
            TrainingProbe(i, prompts[i], {m: answers[i][m] for m in self.models})
            for i in self.item_ids
        ]
        fits = fit_steps(list(self.declared), probes, config.reference.name, config.comparator)
        claimed = claim_fits(store, task, self.plan, fits)
        if claimed is None:
            raise SmartError(
                f"the learned scorers of task {task!r} were fit but their freeze could not be "
                "read back from the store; run the same command again (the answers are kept)"
            )
        return claimed


def training_stage(
    config: SmartConfig, items: Sequence[BatchItem], key: str, seed: int
) -> TrainingStage | None:
    """The training stage of a run of ``items`` under ``config`` (``batch_size`` = all items),
    or ``None`` if it declares no learned cascade to fit. The items are drawn from the run's
    ``key`` and ``seed`` alone."""
    declared = tuple(config.untrained_cascades())
    if not declared:
        return None
    n = training_size(declared)
    if n >= len(items):
        raise ConfigError(
            f"cascades: the learned scorers train on the run's first {n} items, but the input "
            f"has {len(items)}; give a smaller train (scorer='learned:train=N') or more items"
        )
    ids = [it.id for it in items]
    random.Random(f"{key}:{seed}:training").shuffle(ids)
    models = (config.reference.name, *training_models(declared))
    return TrainingStage(declared, tuple(ids[:n]), tuple(dict.fromkeys(models)))
