"""The consoles and small helpers every ``smart`` command shares."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

__all__ = ["alarm", "err", "fail", "out", "progress"]

# Tables stay readable when piped to a file (rich would otherwise wrap them at 80 columns).
# No markup: what is printed is data (route names such as cascade:m[label=A]>ref, TOML hints
# such as [[cascades]]), which rich would read as style tags and drop; styles are Text spans.
out = Console(width=None if sys.stdout.isatty() else 120, markup=False)
err = Console(stderr=True, markup=False)


def alarm(head: str, rest: str) -> Text:
    """``head`` in bold red, then ``rest`` as it is."""
    return Text.assemble((head, "bold red"), rest)


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
    err.print(alarm("error:", f" {message}"), highlight=False)
    return typer.Exit(code=2)
