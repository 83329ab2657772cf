"""``smart replay``: the real engine over logged outputs, each order one simulated deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import SmartError
from .console import fail, out, progress
from .options import parse_prices

__all__ = ["replay_command"]


def replay_command(
    file: Annotated[Path, typer.Argument(help="JSONL replay file: one item per line.")],
    reference: Annotated[str, typer.Option(help="Reference model name as in the file.")],
    epsilon: Annotated[float, typer.Option(help="Allowed share of differing answers.")],
    candidates: Annotated[
        str | None, typer.Option(help="Comma-separated candidates (default: all others).")
    ] = None,
    delta: Annotated[float, typer.Option(help="Allowed failure probability.")] = 0.05,
    comparator: Annotated[
        str, typer.Option(help="exact | choice:A,B,C,D | regex:PATTERN | number[:TOL] | json")
    ] = "exact",
    orders: Annotated[int, typer.Option(help="Random orders (simulated deployments).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the first order.")] = 0,
    method: Annotated[str, typer.Option(help="anytime | clopper-pearson")] = "anytime",
    price: Annotated[
        list[str] | None, typer.Option(help="MODEL=IN,OUT USD per 1M tokens (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    screen: Annotated[
        int | None,
        typer.Option(
            help="Requests screened before certification (batch mode); 0 turns screening off. "
            "Default: screened with six candidates or more."
        ),
    ] = None,
    cascades: Annotated[
        str | None,
        typer.Option(
            help="Cascades as routes too: 'auto' (per candidate and label, and per pair of "
            "candidates) or a TOML file of [[cascades]] tables; savings are printed beside "
            "plain mixing's."
        ),
    ] = None,
) -> None:
    """Run the real engine over logged outputs, each order one simulated batch deployment."""
    from ..jobs.replay import replay as run_replay

    if orders < 1:
        raise fail("--orders must be >= 1")
    if not file.is_file():
        raise fail(f"{file}: no such file")
    cands = [c.strip() for c in candidates.split(",") if c.strip()] if candidates else None
    declared = _cascades(cascades)
    try:
        with progress(orders * (2 if declared else 1), "replaying", not as_json) as advance:
            report = run_replay(
                file,
                reference=reference,
                candidates=cands,
                epsilon=epsilon,
                delta=delta,
                comparator=comparator,
                orders=orders,
                seed=seed,
                method=method,
                prices=parse_prices(price),
                progress=advance,
                cascades=declared,
                screen=screen,
            )
    except SmartError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    table = Table(title=f"smart replay {file.name}: epsilon={epsilon:g}, delta={delta:g}")
    for col in ("order", "cost $", "reference $", "savings", "differing", "> eps", "probes"):
        table.add_column(col, justify="right")
    for o in report.orders:
        table.add_row(
            str(o.seed),
            f"{o.cost:.4f}",
            f"{o.reference_cost:.4f}",
            f"{o.savings:.2f}x",
            f"{o.disagreement:.2%}",
            "yes" if o.exceeded else "no",
            str(o.probes),
        )
    out.print(table)
    out.print(
        f"median savings {report.savings:.2f}x (cost ${report.cost:.4f} vs reference-only "
        f"${report.reference_cost:.4f}); mean differing {report.disagreement:.2%} (max "
        f"{report.max_disagreement:.2%}); orders exceeding epsilon {report.violation_rate:.0%}; "
        f"median probes {report.probes:g}"
    )
    out.print("routes: " + ", ".join(f"{r} {s:.1%}" for r, s in report.routes.items()))
    out.print(
        f"best mix with the rates known (oracle): {report.oracle_savings:.2f}x; best route "
        f"with its rate known but certified on probes: {report.certified_oracle_savings:.2f}x"
    )
    if declared:
        out.print(
            f"plain mixing (models only, same orders): median savings "
            f"{report.plain_savings:.2f}x, orders exceeding epsilon "
            f"{report.plain_violation_rate:.0%}; oracle with cascades "
            f"{report.oracle_savings_cascades:.2f}x"
        )


def _cascades(value: str | None) -> str | list | None:
    """``--cascades``: ``auto``, ``auto+learned`` (one learned cascade per candidate too), or a
    TOML file whose ``[[cascades]]`` tables declare them."""
    if value is None or value.strip().lower() in ("auto", "auto+learned"):
        return value and value.strip().lower()
    import tomllib

    path = Path(value)
    if not path.is_file():
        raise fail(f"--cascades {value!r}: give 'auto' or a TOML file with [[cascades]] tables")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"--cascades {path}: not valid TOML ({exc})") from None
    if not isinstance(data.get("cascades"), list):
        raise fail(
            f"--cascades {path}: no [[cascades]] tables; e.g. [[cascades]] "
            "steps = [{model = 'gpt-4o-mini', scorer = 'label:A'}]"
        )
    return data["cascades"]
