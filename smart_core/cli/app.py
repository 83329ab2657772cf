"""The ``smart`` command line: replay logged outputs, reproduce the paper, measure overhead."""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import SmartError
from ..task.pricing import Price
from ..testing._cli import fake_server
from .bench import bench_app
from .console import err, fail, out, progress
from .run_console import finish_run, run_progress

__all__ = ["app", "main"]

app = typer.Typer(
    name="smart",
    help="SMART: cut LLM bills while at most a share epsilon of answers differ from the "
    "reference model's, with confidence 1-delta.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(bench_app, name="bench")
app.command("fake-server")(fake_server)


def _paragraphs(func):
    """Joins each docstring paragraph into one line: typer's help keeps the source's line breaks
    after the first paragraph, which cut sentences short in any terminal narrower than them."""
    text = inspect.cleandoc(func.__doc__ or "")
    func.__doc__ = "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))
    return func


def _parse_prices(values: list[str] | None) -> dict[str, Price]:
    prices = {}
    for value in values or []:
        try:
            model, rest = value.split("=", 1)
            inp, outp = (float(x) for x in rest.split(","))
        except ValueError:
            raise fail(
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
    from ..jobs.replay import replay as run_replay

    if orders < 1:
        raise fail("--orders must be >= 1")
    if not file.is_file():
        raise fail(f"{file}: no such file")
    cands = [c.strip() for c in candidates.split(",") if c.strip()] if candidates else None
    try:
        with progress(orders, "replaying", not as_json) as advance:
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


def _load_toml(path: Path | None) -> dict:
    if path is None:
        return {}
    import tomllib

    if not path.is_file():
        raise fail(f"--config {path}: no such file")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"--config {path}: not valid TOML ({exc})") from None
    return dict(data.get("run", data))


_RUN_KEYS = {
    "input", "prompt", "reference", "candidates", "epsilon", "delta", "output", "comparator",
    "concurrency", "task", "state", "timeout", "max_retries", "base_urls", "prices", "seed",
    "report", "png", "method", "max_tokens",
}  # fmt: skip


def _split(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [v.strip() for v in value if v and v.strip()]


@app.command()
@_paragraphs
def run(
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="Items: .jsonl (objects) or .csv.")
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option(help="Prompt template; each {field} is replaced by that field of the item."),
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="Reference model spec, e.g. openai:gpt-4o.")
    ] = None,
    candidates: Annotated[
        str | None,
        typer.Option(help="Comma-separated cheaper model specs, e.g. openai:gpt-4o-mini."),
    ] = None,
    epsilon: Annotated[
        float | None, typer.Option(help="Allowed share of differing answers.")
    ] = None,
    delta: Annotated[
        float | None, typer.Option(help="Allowed failure probability (default 0.05).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output JSONL, one line per item.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file with any of these options (flags win).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Items in flight at once (default 32).")
    ] = None,
    comparator: Annotated[
        str | None,
        typer.Option(help="exact (default) | choice:A,B | regex:PATTERN | number[:TOL] | json"),
    ] = None,
    task: Annotated[str | None, typer.Option(help="Task name in the store (default run).")] = None,
    state: Annotated[
        Path | None, typer.Option(help="Run state (SQLite); default OUTPUT.smart.db.")
    ] = None,
    restart: Annotated[
        bool,
        typer.Option("--restart", help="Discard the saved state of this output and start over."),
    ] = False,
    openai_base_url: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible server.")
    ] = None,
    anthropic_base_url: Annotated[
        str | None, typer.Option(help="Base URL of an Anthropic-compatible server.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds per model call (default 60).")
    ] = None,
    max_retries: Annotated[
        int | None,
        typer.Option(
            help="Retries per call on 429/5xx/timeouts, honouring retry-after (default 4)."
        ),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Max output tokens per answer (default 256).")
    ] = None,
    price: Annotated[
        list[str] | None, typer.Option(help="MODEL=IN,OUT USD per 1M tokens (repeatable).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="JSON report path; default OUTPUT stem + .report.json.")
    ] = None,
    png: Annotated[
        Path | None, typer.Option(help="Chart path; default OUTPUT stem + .png.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the item order and route draws (default 0).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Answer every item of a file through SMART: concurrent, resumable, with a report and chart.

    Killed at any point and started again with the same arguments, it continues where it
    stopped: answered items are never paid for again and no output line is lost or duplicated.
    """
    import asyncio

    from ..jobs.batch_input import check_writable
    from ..jobs.batch_run import BatchRun, run_batch
    from ..providers.sdk import make_provider

    cfg = _load_toml(config)
    unknown = sorted(set(cfg) - _RUN_KEYS)
    if unknown:
        raise fail(f"--config {config}: unknown keys {unknown}; valid keys: {sorted(_RUN_KEYS)}")

    def pick(name: str, flag, default=None):
        return flag if flag is not None else cfg.get(name, default)

    base_urls = dict(cfg.get("base_urls") or {})
    if openai_base_url:
        base_urls["openai"] = openai_base_url
    if anthropic_base_url:
        base_urls["anthropic"] = anthropic_base_url
    prices = {**(cfg.get("prices") or {}), **_parse_prices(price)}
    values = {
        "input": pick("input", input),
        "prompt": pick("prompt", prompt),
        "reference": pick("reference", reference),
        "candidates": _split(pick("candidates", candidates)),
        "epsilon": pick("epsilon", epsilon),
        "output": pick("output", output),
    }
    missing = [f"--{k}" for k, v in values.items() if v in (None, [], "")]
    if missing:
        raise fail(
            f"missing {', '.join(missing)} (give them as options or in --config); e.g. "
            "smart run --input items.jsonl --prompt 'Classify: {text}' --reference openai:gpt-4o "
            "--candidates openai:gpt-4o-mini --epsilon 0.05 --output out.jsonl"
        )
    out_path = Path(values["output"])
    spec = BatchRun(
        input=Path(values["input"]),
        prompt=str(values["prompt"]),
        reference=str(values["reference"]),
        candidates=values["candidates"],
        epsilon=float(values["epsilon"]),
        output=out_path,
        delta=float(pick("delta", delta, 0.05)),
        comparator=str(pick("comparator", comparator, "exact")),
        task=str(pick("task", task, "run")),
        concurrency=int(pick("concurrency", concurrency, 32)),
        method=str(pick("method", None, "anytime")),
        state=Path(pick("state", state)) if pick("state", state) else None,
        prices=prices,
        seed=int(pick("seed", seed, 0)),
    )
    report_path = Path(pick("report", report) or out_path.with_suffix(".report.json"))
    png_path = Path(pick("png", png) or out_path.with_suffix(".png"))
    options = {
        "timeout": float(pick("timeout", timeout, 60.0)),
        "max_retries": int(pick("max_retries", max_retries, 4)),
        "max_tokens": int(pick("max_tokens", max_tokens, 256)),
    }
    try:
        from ..providers.sdk import PROVIDERS, parse_model_spec

        endpoints = {}
        named = [("--reference", spec.reference)] + [("--candidates", c) for c in spec.candidates]
        for field, name in named:
            parsed = parse_model_spec(name, field=field)
            if parsed.name == next(iter(endpoints), None):
                raise fail(
                    f"--candidates lists the reference {parsed.name}; remove it from the "
                    "candidates (SMART asks the reference itself)"
                )
            if parsed.name in endpoints:
                raise fail(
                    f"--candidates lists {parsed.name} twice; remove the repeat from the candidates"
                )
            base_url = base_urls.get(parsed.provider) or os.environ.get(
                PROVIDERS[parsed.provider].replace("API_KEY", "BASE_URL")
            )
            endpoints[parsed.name] = make_provider(parsed, base_url=base_url, **options)
        spec.reference = parse_model_spec(spec.reference).name
        spec.candidates = [parse_model_spec(c).name for c in spec.candidates]
        # Before any call: a run must not pay for answers it cannot write down.
        written = {"--output": out_path, "--report": report_path, "--png": png_path}
        for option, path in written.items():
            check_writable(path, option)
    except SmartError as exc:
        raise fail(str(exc)) from None

    async def go(update):
        try:
            return await run_batch(spec, endpoints, restart=restart, progress=update)
        finally:
            for ep in endpoints.values():
                await ep.aclose()

    try:
        with run_progress(err, not as_json) as update:
            result = asyncio.run(go(update))
    except SmartError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to continue where it stopped")
        raise typer.Exit(code=130) from None
    finish_run(out, err, result, spec, report_path, png_path, as_json)
    if result.failed:
        raise typer.Exit(code=1)


# -- smart report ----------------------------------------------------------------------------


@app.command("report")
def report_cmd(
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


# -- smart demo ------------------------------------------------------------------------------


@app.command()
@_paragraphs
def demo(
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


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
