"""``smart report``: what each task in a store has cost, saved and promised.

Everything comes from the store: the counters every router writes, and the task's configuration,
which ``smart run`` and ``smart demo`` record as metadata (``config``) so a report can rebuild the
policy -- and with it the bounds, the mix and the certificate -- in another process. A task whose
configuration was not recorded is reported from its counters alone (spend and calls, no bounds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.ledger import Ledger
from ..engine.scorer_training import stored_config
from ..errors import SmartError
from ..policy import keys as K
from ..policy import policy_for
from ..stores import Store, open_store
from ..task.config import SmartConfig

__all__ = ["TaskReport", "store_report"]


@dataclass
class TaskReport:
    """One task's figures; ``ledger`` is None when the task's configuration is unknown."""

    task: str
    requests: int
    spent: float
    probes: int
    audits: int
    probe_cost: float
    calls: dict[str, int]
    spend_by_model: dict[str, float]
    ledger: Ledger | None = None
    certificate: dict[str, Any] | None = None
    note: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "requests": self.requests,
            "spent": self.spent,
            "probes": self.probes,
            "audits": self.audits,
            "probe_cost": self.probe_cost,
            "calls": self.calls,
            "spend_by_model": self.spend_by_model,
            "ledger": self.ledger.to_dict() if self.ledger else None,
            "certificate": self.certificate,
            "note": self.note,
        }

    def text(self) -> str:
        lines = []
        if self.ledger is not None:
            lines.append(self.ledger.summary())
            lines.append(
                "  probe/audit overhead: candidates' calls on probes "
                f"${self.probe_cost:.4f} ({self.probes} probes, {self.audits} audits)"
            )
            lines.append(f"  certificate now: {_certificate_line(self.ledger)}")
        else:
            lines.append(f"task {self.task}")
            lines.append(
                f"  requests {self.requests}, probes {self.probes} (audits {self.audits}), "
                f"spent ${self.spent:.4f}"
            )
        lines.append(
            "  spend by model: "
            + ", ".join(
                f"{m} ${c:.4f} ({self.calls.get(m, 0)} calls)"
                for m, c in self.spend_by_model.items()
            )
        )
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


def _fmt_mix(mix: dict[str, float]) -> str:
    return ", ".join(f"{r} {w:.1%}" for r, w in mix.items()) or "-"


def _certificate_line(ledger: Ledger) -> str:
    """What the task's policy promises now, in the words of its mode.

    In batch mode the mix is a plan for the items not yet decided and its ``bound`` is budget
    bookkeeping, so the line states the count against the budget and each candidate's own bound
    instead of a "guaranteed agreement" that would read as one for the whole batch.
    """
    if ledger.mode == "batch":
        own = ", ".join(f"{r.name} >= {r.lower:.4f}" for r in ledger.routes.values() if r.requests)
        line = ledger.guarantee()
        if own:
            line += f"; agreement bounds of the candidates routed to: {own}"
        return line
    return (
        f"mix {_fmt_mix(ledger.mix)}, guaranteed agreement >= {ledger.bound:.4f} >= "
        f"1 - epsilon = {1 - ledger.effective_epsilon:.4f}, with confidence "
        f"{1 - ledger.delta:.0%}"
    )


def task_config(store: Store, task: str) -> SmartConfig | None:
    """The configuration recorded for ``task`` (by ``smart run`` / ``smart demo``), if any."""
    raw = store.get_meta(task, "config")
    if raw is None:
        return None
    return SmartConfig.model_validate_json(raw)


def report_task(store: Store, task: str) -> TaskReport:
    counters = store.read(task)
    models = sorted(
        {k.split(":", 1)[1] for k in counters if k.startswith("call.n:")},
    )
    rep = TaskReport(
        task=task,
        # a run's training items (K.TRAINED) are requests and probes too, kept apart from the
        # batch's counters that its policy reads
        requests=int(counters.get(K.REQUESTS, 0) + counters.get(K.TRAINED, 0)),
        spent=counters.get(K.SPENT, 0.0),
        probes=int(counters.get(K.PROBES, 0) + counters.get(K.TRAINED, 0)),
        audits=int(counters.get(K.AUDITS, 0)),
        probe_cost=counters.get(K.SPENT_PROBE_CANDIDATES, 0.0),
        calls={m: int(counters.get(K.calls(m), 0)) for m in models},
        spend_by_model={m: counters.get(K.call_cost(m), 0.0) for m in models},
    )
    config = task_config(store, task)
    if config is None:
        rep.note = (
            "no configuration recorded for this task, so no bounds: tasks run by `smart run` "
            "or `smart demo` record theirs"
        )
        return rep
    # learned cascades frozen by the running processes are read back from the store
    policy = policy_for(stored_config(config, store, task), task=task)
    ledger = Ledger.from_counters(counters, policy)
    rep.ledger = ledger
    rep.certificate = {
        "task": task,
        "mix": ledger.mix,
        "bound": ledger.bound,
        "probes": ledger.probes,
        "epsilon": ledger.epsilon,
        "delta": ledger.delta,
        "method": ledger.method,
        "mode": ledger.mode,
        "effective_epsilon": ledger.effective_epsilon,
        "bounds": {r.name: r.lower for r in ledger.routes.values()},
        "batch_size": ledger.batch_size,
        "budget": ledger.budget,
        "differing_at_most": ledger.differing_at_most,
        "guarantee": ledger.guarantee(),
    }
    return rep


def store_report(url: str | Store, task: str | None = None) -> list[TaskReport]:
    """Reports for every task in the store (or just ``task``)."""
    if isinstance(url, str) and url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if not path.is_file():
            raise SmartError(f"--store {url}: no such file {path}")
    store = open_store(url)
    try:
        tasks = store.tasks()
        if task is not None:
            if task not in tasks:
                raise SmartError(f"--task {task!r}: not in the store; tasks there: {tasks}")
            tasks = [task]
        return [report_task(store, t) for t in tasks]
    finally:
        if isinstance(url, str):
            store.close()
