"""Live progress of ``smart run`` and ``smart demo``: items done, spend, and the run's routing.

On a terminal the bar has its own line, so that it keeps a readable width in an 80-column
window, and the figures go on the line below; off a terminal (logs, CI) the same figures are
printed as one line every 10 % of the items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

if TYPE_CHECKING:  # the CLI imports this module at start-up; the engine only when it runs
    from ._ledger import Ledger

__all__ = ["routed_shares", "run_progress", "status_line"]

Update = Callable[[int, "Ledger", int], None]


def _short(name: str) -> str:
    return name.split(":", 1)[-1]


def routed_shares(ledger: Ledger) -> dict[str, float]:
    """Share of the run's items routed to each model so far, largest first.

    This is the run's mix as it happened; ``ledger.mix`` is the plan for the items still to come,
    which near the end of a batch is whatever the remaining budget allows (often the reference
    alone) and so says little about the run.
    """
    total = sum(ledger.routed.values())
    shares = {name: n / total for name, n in ledger.routed.items() if n > 0}
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def money_line(ledger: Ledger) -> str:
    return f"${ledger.spent:.4f} paid (ref-only ~${ledger.reference_estimate:.4f})"


def status_line(ledger: Ledger) -> str:
    """Where the run's items went so far, and the bound of the mix in force."""
    shares = routed_shares(ledger)
    routed = ", ".join(f"{_short(r)} {s:.0%}" for r, s in shares.items())
    return f"routed: {routed or 'nothing yet'}; bound {ledger.bound:.3f}"


@contextmanager
def run_progress(err: Console, enabled: bool) -> Iterator[Update | None]:
    """Yield ``update(n_done, ledger, total)`` drawing the progress on ``err``; None when off."""
    if not enabled:
        yield None
        return
    if not err.is_terminal:
        yield _log_lines(err)
        return
    columns = (
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[money]}"),
    )
    with _TwoLineProgress(*columns, console=err, transient=False, expand=True) as bar:
        task = bar.add_task("run", total=None, money="", status="")

        def update(n: int, ledger: Ledger, total: int) -> None:
            money, status = money_line(ledger), status_line(ledger)
            bar.update(task, advance=n, total=total, money=money, status=status)

        yield update


class _TwoLineProgress(Progress):
    """Bar, count, time and money on one line; the routing status on the next."""

    def get_renderables(self) -> Iterator[Any]:
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            yield Text(task.fields.get("status", ""), no_wrap=False)


def _log_lines(err: Console) -> Update:
    state = {"done": 0, "next": 0}

    def log(n: int, ledger: Ledger, total: int) -> None:
        state["done"] += n
        if not state["done"] or (state["done"] < state["next"] and state["done"] < total):
            return
        state["next"] = state["done"] + max(1, total // 10)
        status = status_line(ledger)
        err.print(
            f"{state['done']}/{total} items, {money_line(ledger)}, {status}",
            highlight=False,
            soft_wrap=True,
        )

    return log
