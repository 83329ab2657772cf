"""The ``smart`` command line: the Typer app, its commands in the order ``smart --help`` lists
them, and the console-script entry point. Each command lives in its own module."""

from __future__ import annotations

import sys

import typer

from ..testing._cli import fake_server
from . import bench_cache as _bench_cache  # noqa: F401  (registers `smart bench nn`, `qqp`)
from . import bench_serve as _bench_serve  # noqa: F401  (registers `smart bench serve`)
from .bench import bench_app
from .console import err
from .demo import demo_command
from .replay import replay_command
from .report import report_command
from .run import run_command
from .serve import serve_command

__all__ = ["app", "main"]

app = typer.Typer(
    name="smart",
    help="SMART: cut LLM bills while at most a share epsilon of answers differ from the "
    "reference model's, with confidence 1-delta.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help is printed as written: rich markup would read "[[cascades]]" and route names such
    # as "cascade:m[label=A]>ref" as style tags and drop them.
    rich_markup_mode=None,
)
app.add_typer(bench_app, name="bench")
app.command("fake-server")(fake_server)
app.command("replay")(replay_command)
app.command("run")(run_command)
app.command("report")(report_command)
app.command("demo")(demo_command)
app.command("serve")(serve_command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
