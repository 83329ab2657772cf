"""``smart demo``: SMART end to end with no keys and no network (or, with ``--live``, against
the real APIs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import SmartError
from .console import err, fail, out
from .options import help_paragraphs
from .run_console import run_progress

__all__ = ["demo_command"]


@help_paragraphs
def demo_command(
    items: Annotated[int, typer.Option(help="Generated support tickets to label.")] = 3000,
    epsilon: Annotated[float, typer.Option(help="Allowed share of differing answers.")] = 0.05,
    delta: Annotated[float, typer.Option(help="Allowed failure probability.")] = 0.05,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for the chart, report, answers and store.")
    ] = Path("smart-demo"),
    live: Annotated[
        bool,
        typer.Option(
            help="Call the real OpenAI and Anthropic APIs (needs OPENAI_API_KEY and "
            "ANTHROPIC_API_KEY; costs real money: use --items 200)."
        ),
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Tickets in flight at once (default 8 simulated, 32 with --live)."),
    ] = None,
    pipeline: Annotated[
        str,
        typer.Option(
            help="langchain: an LCEL chain `prompt | SmartChatModel | StrOutputParser()`; "
            "engine: the framework-free `smart run` engine; auto: langchain when installed."
        ),
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """SMART end to end with no keys and no network: simulated models on a local server.

    Labels generated support tickets with a simulated gpt-4o (reference), gpt-4o-mini and
    claude-haiku-4-5 (list prices; cheap models err more on hard tickets), then prints and plots
    what was saved and the realized share of answers that differed from the reference's.
    """
    from ..jobs.demo import run_demo

    if items < 1:
        raise fail("--items must be >= 1")
    try:
        with run_progress(err, not as_json) as update:
            result = run_demo(
                items=items,
                epsilon=epsilon,
                delta=delta,
                out_dir=out_dir,
                live=live,
                concurrency=concurrency or (32 if live else 8),
                pipeline=pipeline,
                progress=update,
            )
    except SmartError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return
    out.print(result.summary, highlight=False)
