"""What ``smart run`` and ``smart demo`` print: live progress (items done, spend, the run's
routing) and, for ``smart run``, the end summary.

On a terminal the bar has its own line, so that it keeps a readable width in an 80-column
window, and the figures go on the line below; off a terminal (logs, CI) the same figures are
printed as one line every 10 % of the items.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from .console import alarm

if TYPE_CHECKING:  # the CLI imports this module at start-up; the engine only when it runs
    from ..engine.ledger import Ledger
    from ..jobs.batch_run import BatchResult, BatchRun

__all__ = ["finish_run", "routed_shares", "run_progress", "status_line"]

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
    """Where the run's items went so far, and what is guaranteed (the ledger's words)."""
    shares = routed_shares(ledger)
    routed = ", ".join(f"{_short(r)} {s:.0%}" for r, s in shares.items())
    # the routes drawn; items the answer cache served instead are counted apart
    cached = f"; {ledger.cache_hits} from the cache" if ledger.cache_hits else ""
    return f"routed: {routed or 'nothing yet'}{cached}; {ledger.headline()}"


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


def finish_run(
    out: Console,
    err: Console,
    result: BatchResult,
    spec: BatchRun,
    report_path: Path,
    png_path: Path,
    as_json: bool,
) -> None:
    """Write the report and chart, then print the summary (or the JSON report)."""
    from ..reporting.charts import plot_run

    doc = result.to_dict()
    doc["report"] = str(report_path)
    doc["chart"] = str(png_path)
    rows = result.timeline
    if rows:
        plot_run(
            rows,
            png_path,
            epsilon=spec.epsilon,
            title=f"smart run {spec.input.name}: {result.done}/{result.items} items, "
            f"epsilon={spec.epsilon:g}, delta={spec.delta:g}",
        )
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    if as_json:
        print(json.dumps(doc, indent=2, default=str))
        return
    if result.failed:
        # The ledger counts every item the run decided on, answered or not, so its reference-only
        # estimate (and the savings) would include items that have no answer.
        out.print(
            f"{len(result.failed)} of {result.items} items have no answer, so no savings are "
            f"shown; paid ${result.ledger.spent:.4f} so far. Once every item is answered the "
            "summary shows them",
            highlight=False,
        )
        cache = result.cache_summary()
        if cache is not None:  # the ledger's summary, which has this line, is not shown
            out.print(
                f"  answer cache: {cache['hits']} hits, {cache['misses']} misses, "
                f"saved ~${cache['saved']:.4f}",
                highlight=False,
            )
    else:
        out.print(result.ledger.summary(), highlight=False)
    out.print(
        f"items {result.done}/{result.items} ({result.resumed} from an earlier run, "
        f"{result.answered_now} now) in {result.seconds:.1f} s; routes: "
        + ", ".join(f"{r} {n}" for r, n in result.routes.items()),
        highlight=False,
    )
    out.print(
        f"output {result.output}; report {report_path}; chart {png_path}; state {result.state}",
        highlight=False,
    )
    if result.failed:
        first = next(iter(result.failed.items()))
        err.print(
            alarm(
                f"{len(result.failed)} items could not be answered",
                f" (e.g. {first[0]}: {first[1]}); run the same command again to retry only those",
            ),
            highlight=False,
        )
