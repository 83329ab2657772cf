"""``smart report``: per task, what a store has recorded (requests, spend, savings, probes, mix,
bounds), as text, JSON or a chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import SmartError
from .console import fail, out

__all__ = ["report_command"]


def report_command(
    store: Annotated[str, typer.Option(help="Store URL, e.g. sqlite:///out.jsonl.smart.db.")],
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    png: Annotated[Path | None, typer.Option(help="Also write a chart to this PNG file.")] = None,
) -> None:
    """Per task: requests, spend, reference-only estimate, savings, probes, mix, bounds."""
    from ..reporting.report import store_report

    try:
        reports = store_report(store, task)
    except SmartError as exc:
        raise fail(str(exc)) from None
    if png is not None:
        _report_chart(store, reports, png)
    if as_json:
        print(json.dumps([r.to_dict() for r in reports], indent=2, default=str))
        return
    if not reports:
        out.print(f"{store}: no tasks yet")
    for r in reports:
        # One line per route, wrapped by the terminal: rich's own wrapping cut lines mid-phrase.
        out.print(r.text(), highlight=False, soft_wrap=True)
    if png is not None:
        out.print(f"chart {png}")


def _report_chart(store: str, reports, png: Path) -> None:
    from ..jobs.batch_run import timeline
    from ..reporting.charts import plot_ledger, plot_run

    rows = timeline(store[len("sqlite:///") :]) if store.startswith("sqlite:///") else []
    ledgers = [r.ledger for r in reports if r.ledger is not None]
    if rows and len(ledgers) == 1:
        plot_run(
            rows,
            png,
            epsilon=ledgers[0].epsilon,
            title=f"smart report: {ledgers[0].task}",
            differing_at_most=ledgers[0].differing_at_most,
        )
    elif ledgers:
        plot_ledger(ledgers, png, title=f"smart report {store}")
    else:
        raise fail("--png: no task in this store has a recorded configuration to chart")
