"""``smart run``: every item of a file answered through SMART, concurrent and resumable, with a
report and a chart; options come from flags, a TOML ``--config``, or both (flags win)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import SmartError
from .console import err, fail, out
from .options import (
    cascade_logprob_models,
    help_paragraphs,
    load_config,
    parse_prices,
    run_cascades,
    run_store,
    split_list,
)
from .run_console import finish_run, run_progress

__all__ = ["run_command"]

# The keys a --config file may set: the options below (base URLs and prices as the tables
# base_urls and prices) and method, which has no flag; --restart and --json are per invocation.
_RUN_KEYS = {
    "input", "prompt", "reference", "candidates", "epsilon", "delta", "output", "comparator",
    "concurrency", "task", "state", "timeout", "max_retries", "base_urls", "prices", "seed",
    "report", "png", "method", "max_tokens", "store", "cascades", "cache", "cache_answers",
    "tenant",
}  # fmt: skip
_CACHE_MODES = ("off", "exact", "semantic")
_CACHE_ANSWERS = ("shared", "per_user")


@help_paragraphs
def run_command(
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
    store: Annotated[
        str | None,
        typer.Option(
            help="Keep the counters and run state in a shared store instead: redis://... or "
            "postgresql://... (sqlite:///path.db is --state path.db)."
        ),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option("--restart", help="Discard the saved state of this run and start over."),
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
    cascades: Annotated[
        str | None,
        typer.Option(
            help="Cascades routed to besides the candidates: auto, auto+learned (and a "
            "learned cascade per candidate, fit on the run's first items), or a TOML file with "
            "[[cascades]] tables (docs/cascades.md); also `cascades` in --config."
        ),
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(
            help="Answer cache: exact (a repeated request of the same tenant, and user for "
            "per-user answers, is answered from the reference's earlier answer, at no cost), "
            "semantic, or off (default); items name their tenant and user in the fields "
            "tenant and user (docs/cache.md)."
        ),
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

    cfg = load_config(config)
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
    prices = {**(cfg.get("prices") or {}), **parse_prices(price)}
    values = {
        "input": pick("input", input),
        "prompt": pick("prompt", prompt),
        "reference": pick("reference", reference),
        "candidates": split_list(pick("candidates", candidates)),
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
    cache_mode, cache_answers, tenant = _cache_settings(cfg, cache, config)
    shared_store, state_file = run_store(pick("store", store), pick("state", state))
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
        state=state_file,
        store=shared_store,
        prices=prices,
        seed=int(pick("seed", seed, 0)),
        cascades=run_cascades(pick("cascades", cascades)),
        cache=cache_mode,
        cache_answers=cache_answers,
        tenant=tenant,
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
        # Steps judged by their confidence: their models are asked for token logprobs.
        for name in cascade_logprob_models(spec):
            endpoints[name].logprobs = True
        # Before any call: a run must not pay for answers it cannot write down.
        written = {"--output": out_path, "--report": report_path, "--png": png_path}
        for option, path in written.items():
            check_writable(path, option)
    except SmartError as exc:
        raise fail(str(exc)) from None

    if cache_mode == "semantic" and not as_json:
        err.print(
            "note: --cache semantic in a run: the semantic index is frozen for the batch "
            "(docs/guarantee.md) and starts empty in this process, so the semantic routes serve "
            "only the reference's answers (exact hits still serve repeats); --cache exact gives "
            "the same hits without their share of delta",
            highlight=False,
        )

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


def _cache_settings(cfg: dict, flag: str | None, config: Path | None) -> tuple[str, str, str]:
    """The answer cache's mode, whose answers are shared, and the default tenant, from the flag
    and the --config keys ``cache``, ``cache_answers`` and ``tenant``, each checked."""
    mode = flag if flag is not None else cfg.get("cache", "off")
    if mode not in _CACHE_MODES:
        where = "--cache" if flag is not None else f"--config {config}: cache"
        raise fail(f"{where} must be one of {', '.join(_CACHE_MODES)}, got {mode!r}")
    answers = cfg.get("cache_answers", "shared")
    if answers not in _CACHE_ANSWERS:
        raise fail(
            f"--config {config}: cache_answers must be shared (a tenant's users share answers) "
            f"or per_user (each user only their own), got {answers!r}"
        )
    tenant = cfg.get("tenant", "default")
    if not isinstance(tenant, str) or not tenant.strip() or tenant != tenant.strip():
        raise fail(
            f"--config {config}: tenant must be a non-empty name without surrounding spaces "
            f'(the tenant of items with no tenant field), got {tenant!r}; e.g. tenant = "acme"'
        )
    return str(mode), str(answers), tenant
