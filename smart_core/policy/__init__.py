"""What to do with the next request, given a task's state: probe, route, or commit. Pure
functions of the task state (read from a store by the engine); no I/O.

One policy class per mode, behind the :class:`Policy` protocol the engine drives:
:class:`OnlineMixPolicy` (online: the LP mix, probing economics, audits, drift epochs) and
:class:`BatchPlanPolicy` (batch mode: the finite-population commitment plan), or
:class:`BatchBudgetPolicy` for a batch on the per-item Clopper-Pearson bound (replication
only). :func:`policy_for` picks the one a configuration asks for.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import (
    Decision,
    Policy,
    PolicyView,
    current_epoch,
    probe_failure,
    probe_outcome,
    split_delta,
)
from .batch import BatchPlanPolicy
from .batch_budget import BatchBudgetPolicy
from .online import OnlineMixPolicy
from .screened_batch import ScreenedBatchPolicy, default_screen
from .state import TaskState


def batch_policy(*, batch_size: int, candidates, screen: int | None = None, **kwargs) -> Policy:
    """The batch plan for these arguments: with a screening stage where one pays
    (:func:`~smart_core.policy.screened_batch.default_screen`, or ``screen`` requests; 0 turns
    it off), else the plain plan."""
    n = default_screen(batch_size, len(candidates)) if screen is None else screen
    if n > 0:
        return ScreenedBatchPolicy(batch_size=batch_size, candidates=candidates, screen=n, **kwargs)
    return BatchPlanPolicy(batch_size=batch_size, candidates=candidates, **kwargs)


def policy_class(
    *, batch_size: int | None, method: str = "anytime"
) -> type[OnlineMixPolicy] | type[BatchPlanPolicy] | type[BatchBudgetPolicy]:
    """The policy class of a mode: online without ``batch_size``; in batch mode the commitment
    plan on the (default) anytime bound, the per-item budget on ``"clopper-pearson"``."""
    if batch_size is None:
        return OnlineMixPolicy
    return BatchPlanPolicy if method == "anytime" else BatchBudgetPolicy


def refuse_batch_training(config) -> None:
    """ConfigError if ``config`` is in batch mode with a learned cascade still to be fit: online
    mode fits it on the router's early probes (smart_core.engine.scorer_training), a batch's
    plan cannot make room for a route that opens halfway; a batch fits it in a training stage
    before its plan starts (``smart run``, ``smart replay``)."""
    learning = [c.name for c in config.untrained_cascades()]
    if learning and config.batch_size is not None:
        raise ConfigError(
            f"cascades {learning}: a learned scorer must be fit before a batch's plan starts. "
            "smart run and smart replay fit it on the batch's first items themselves; a "
            "SmartRouter in batch mode (batch_size set) serves it once a training stage has "
            "claimed its fit in the store (smart_core.jobs.run_training), or give a frozen "
            "scorer (scorer='learned:PATH.json')"
        )


def policy_for(config, *, task: str | None = None) -> Policy:
    """The policy of ``task`` under ``config``, chosen by its mode (online or batch)."""
    cls = policy_class(batch_size=config.batch_size, method=config.method)
    refuse_batch_training(config)
    if cls is BatchPlanPolicy:
        return batch_policy(
            **cls.config_arguments(config, task=task),
            batch_size=config.batch_size,
            screen=getattr(config, "screen", None),
        )
    return cls.from_config(config, task=task)


__all__ = [
    "BatchBudgetPolicy",
    "BatchPlanPolicy",
    "Decision",
    "OnlineMixPolicy",
    "Policy",
    "PolicyView",
    "ScreenedBatchPolicy",
    "TaskState",
    "batch_policy",
    "current_epoch",
    "policy_class",
    "policy_for",
    "probe_failure",
    "probe_outcome",
    "refuse_batch_training",
    "split_delta",
]
