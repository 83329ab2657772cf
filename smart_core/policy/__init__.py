"""What to do with the next request, given a task's counters: probe, route, or commit. Pure
functions of the task state (read from a store by the engine); no I/O.
"""

from .mix_policy import (
    Decision,
    MixPolicy,
    PolicyView,
    current_epoch,
    probe_failure,
    probe_outcome,
    split_delta,
)

#: The policy protocol the engine drives (one implementation per mode).
Policy = MixPolicy


def policy_for(config, *, task: str | None = None) -> Policy:
    """The policy of ``task`` under ``config``, chosen by its mode (online or batch)."""
    return MixPolicy.from_config(config, task=task)


__all__ = [
    "Decision",
    "MixPolicy",
    "Policy",
    "PolicyView",
    "current_epoch",
    "policy_for",
    "probe_failure",
    "probe_outcome",
    "split_delta",
]
