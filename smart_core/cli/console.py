"""The consoles and small helpers every ``smart`` command shares."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["err", "fail", "out", "progress"]

# Tables stay readable when piped to a file (rich would otherwise wrap them at 80 columns).
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)


@contextmanager
def progress(total: int, label: str, enabled: bool):
    """A rich progress bar on stderr (quiet when not a terminal or when printing JSON)."""
    if not enabled or not err.is_terminal:
        yield None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)
