"""Deprecated: the policy is split by mode (:mod:`smart_core.policy.online`,
:mod:`smart_core.policy.batch`, :mod:`smart_core.policy.batch_budget`, shared code in
:mod:`smart_core.policy.base`); import from :mod:`smart_core.policy`.

Kept only for the callers still importing from here (``smart_core/engine/router.py``,
``smart_core/jobs/batch_run.py``) until they are switched to :func:`smart_core.policy.policy_for`;
delete it then. ``MixPolicy`` is not a class any more: ``MixPolicy.from_config`` is
:func:`~smart_core.policy.policy_for`.
"""

from __future__ import annotations

from .base import Decision, probe_failure, probe_outcome
from .base import Policy as _Policy
from . import policy_for as _policy_for

__all__ = ["Decision", "MixPolicy", "probe_failure", "probe_outcome"]


class MixPolicy:
    """Deprecated stand-in: ``MixPolicy.from_config(config, task=...)`` is ``policy_for``."""

    def __new__(cls, *args, **kwargs):  # noqa: D102
        raise TypeError(
            "MixPolicy is split by mode: use smart_core.policy.policy_for(config) or "
            "OnlineMixPolicy / BatchPlanPolicy / BatchBudgetPolicy"
        )

    @staticmethod
    def from_config(config, *, task: str | None = None) -> _Policy:
        return _policy_for(config, task=task)
