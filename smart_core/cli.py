"""The ``smart`` command line: replay logged outputs, reproduce the paper, measure overhead."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._errors import SmartError
from ._pricing import Price

__all__ = ["app", "main"]

app = typer.Typer(
    name="smart",
    help="SMART: cut LLM bills while at most a share epsilon of answers differ from the "
    "reference model's, with confidence 1-delta.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that print numbers.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

# Tables stay readable when piped to a file (rich would otherwise wrap them at 80 columns).
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)


@contextmanager
def _progress(total: int, label: str, enabled: bool):
    """A rich progress bar on stderr (quiet when not a terminal or when printing JSON)."""
    if not enabled or not err.is_terminal:
        yield None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def _parse_prices(values: list[str] | None) -> dict[str, Price]:
    prices = {}
    for value in values or []:
        try:
            model, rest = value.split("=", 1)
            inp, outp = (float(x) for x in rest.split(","))
        except ValueError:
            raise _fail(
                f"--price {value!r}: expected MODEL=INPUT,OUTPUT in USD per 1M tokens, "
                "e.g. --price my-model=0.5,1.5"
            ) from None
        prices[model] = Price(inp, outp)
    return prices


@app.command()
def replay(
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
) -> None:
    """Run the real engine over logged outputs, each order one simulated batch deployment."""
    from ._replay import replay as run_replay

    if orders < 1:
        raise _fail("--orders must be >= 1")
    if not file.is_file():
        raise _fail(f"{file}: no such file")
    cands = [c.strip() for c in candidates.split(",") if c.strip()] if candidates else None
    try:
        with _progress(orders, "replaying", not as_json) as advance:
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
                prices=_parse_prices(price),
                progress=advance,
            )
    except SmartError as exc:
        raise _fail(str(exc)) from None
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


@bench_app.command("paper")
def bench_paper(
    seeds: Annotated[
        int, typer.Option(help="Seeds per point (>= 20 for the published table).")
    ] = 20,
    datasets: Annotated[
        str, typer.Option(help="Comma-separated datasets.")
    ] = "imdb,sms_spam,ag_news",
    epsilons: Annotated[
        str, typer.Option(help="Comma-separated epsilons.")
    ] = "0.02,0.05,0.10,0.15,0.20",
    delta: Annotated[float, typer.Option(help="Allowed failure probability.")] = 0.05,
    method: Annotated[str, typer.Option(help="anytime | clopper-pearson")] = "anytime",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Reproduce the SMART paper's simulation (Jo & Trummer 2024) through SMART's policy."""
    from ._paper import bench_paper as run_bench
    from ._paper import geometric_mean
    from ._paper_data import CITATION, DATASETS

    ds = [d.strip() for d in datasets.split(",") if d.strip()]
    unknown = [d for d in ds if d not in DATASETS]
    if unknown:
        raise _fail(f"--datasets: unknown {unknown}; choose from {sorted(DATASETS)}")
    try:
        eps = [float(e) for e in epsilons.split(",")]
    except ValueError:
        raise _fail(f"--epsilons {epsilons!r}: expected numbers like 0.02,0.05") from None
    if seeds < 1:
        raise _fail("--seeds must be >= 1")
    with _progress(seeds * len(ds) * len(eps), "simulating", not as_json) as advance:
        rows = run_bench(
            datasets=ds, epsilons=eps, seeds=seeds, delta=delta, method=method, progress=advance
        )
    geo = geometric_mean([r.savings for r in rows])
    published = [r.published_savings for r in rows if r.published_savings]
    geo_pub = geometric_mean(published) if len(published) == len(rows) else None
    if as_json:
        doc = {
            "citation": CITATION,
            "seeds": seeds,
            "delta": delta,
            "method": method,
            "rows": [r.to_dict() for r in rows],
            "geometric_mean_savings": geo,
            "geometric_mean_oracle_savings": geometric_mean([r.oracle_savings for r in rows]),
            "geometric_mean_published_savings": geo_pub,
        }
        print(json.dumps(doc, indent=2))
        return
    table = Table(title=f"SMART paper setup ({CITATION}); {seeds} seeds, delta={delta:g}")
    cols = (
        "dataset",
        "epsilon",
        "median cost $",
        "savings",
        "violations",
        "probes",
        "oracle",
        "published",
    )
    for col in cols:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.dataset,
            f"{r.epsilon:.2f}",
            f"{r.cost:.2f}",
            f"{r.savings:.2f}x",
            f"{r.violation_rate:.0%}",
            f"{r.probes:g}",
            f"{r.oracle_savings:.2f}x",
            f"{r.published_savings:.2f}x" if r.published_savings else "-",
        )
    out.print(table)
    line = f"geometric mean savings {geo:.2f}x"
    if geo_pub:
        line += f" (published method {geo_pub:.2f}x)"
    out.print(line + f"; oracle {geometric_mean([r.oracle_savings for r in rows]):.2f}x")


@bench_app.command("overhead")
def bench_overhead(
    requests: Annotated[int, typer.Option(help="Timed requests per store.")] = 5000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Per-request decision overhead of the engine, in memory and with SQLite."""
    from ._overhead import measure_overhead

    results = [
        measure_overhead("memory://", requests=requests),
        measure_overhead("sqlite:///{tmp}/overhead.db", requests=requests),
    ]
    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return
    table = Table(title="per-request overhead (instant models), microseconds")
    for col in ("store", "decide median", "decide p99", "request median", "request p99"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.store,
            f"{r.decide_median_us:.1f}",
            f"{r.decide_p99_us:.1f}",
            f"{r.request_median_us:.1f}",
            f"{r.request_p99_us:.1f}",
        )
    out.print(table)
    out.print("targets: decide median < 50 us in memory, < 1000 us with SQLite")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
