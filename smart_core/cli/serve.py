"""``smart serve``: SMART as an OpenAI-compatible server; one task from flags, or several from a
TOML ``--config`` (a ``[tasks.NAME]`` table each)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import SmartError
from .console import err, fail
from .options import help_paragraphs, load_config, parse_prices, split_list

__all__ = ["serve_command"]

_TOP_KEYS = {"store", "default_task", "base_urls", "prices", "timeout", "max_retries", "tasks"}
_TASK_KEYS = {
    "reference",
    "candidates",
    "epsilon",
    "delta",
    "comparator",
    "expected_requests",
    "cascades",
}
#: The answer cache's keys of a task table (SmartConfig's fields of the same names).
_CACHE_KEYS = {
    "cache",
    "cache_answers",
    "cache_similarities",
    "cache_ttl_seconds",
    "cache_max_entries",
    "embedding",
}


@help_paragraphs
def serve_command(
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
    delta: Annotated[float, typer.Option(help="Allowed failure probability.")] = 0.05,
    comparator: Annotated[
        str, typer.Option(help="tool_calls (default) | exact | choice:A,B | json | ...")
    ] = "tool_calls",
    task: Annotated[str, typer.Option(help="Task name of the flags' task.")] = "default",
    store: Annotated[
        str | None,
        typer.Option(help="Shared state: sqlite:///smart.db (default), redis://, postgresql://."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML with [tasks.NAME] tables and shared settings.")
    ] = None,
    openai_base_url: Annotated[
        str | None, typer.Option(help="Base URL of the upstream OpenAI-compatible server.")
    ] = None,
    anthropic_base_url: Annotated[
        str | None, typer.Option(help="Base URL of the upstream Anthropic-compatible server.")
    ] = None,
    price: Annotated[
        list[str] | None, typer.Option(help="MODEL=IN,OUT USD per 1M tokens (repeatable).")
    ] = None,
    expected_requests: Annotated[
        int | None, typer.Option(help="Expected requests of the flags' task.")
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(
            help="Answer cache of the flags' task: off (default) | exact | semantic. Requests "
            "name their namespace in x-smart-tenant / x-smart-user headers."
        ),
    ] = None,
    cache_answers: Annotated[
        str | None,
        typer.Option(help="shared (a tenant's users share answers, default) | per_user."),
    ] = None,
    embedding: Annotated[
        str | None,
        typer.Option(
            help="With --cache semantic: an upstream embedding model, e.g. "
            "openai:text-embedding-3-small (default: offline hashed character n-grams)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve SMART behind an OpenAI-compatible API: point any OpenAI client's base_url here.

    Each request is routed under the task's guarantee; the answer carries SMART's routing record
    in x-smart-* headers and a smart field. The task is the x-smart-task header, else the
    requested model when a task has that name, else the default task. Upstream keys come from
    OPENAI_API_KEY / ANTHROPIC_API_KEY; clients' keys are ignored. /metrics serves Prometheus
    metrics, /healthz a liveness check.
    """
    import uvicorn

    from ..proxy.settings import SETTINGS_ENV, check_providers

    try:
        settings = _settings(
            config,
            {
                "reference": reference,
                "candidates": split_list(candidates) or None,
                "epsilon": epsilon,
                "delta": delta,
                "comparator": comparator,
                "expected_requests": expected_requests,
                "cache": cache,
                "cache_answers": cache_answers,
                "embedding": embedding,
            },
            task,
            store,
            {"openai": openai_base_url, "anthropic": anthropic_base_url},
            parse_prices(price),
        )
        check_providers(settings)
        settings.configs()  # fail here, not in every worker
    except SmartError as exc:
        raise fail(str(exc)) from None
    names = ", ".join(t.name for t in settings.tasks)
    err.print(f"smart serve: tasks {names} on http://{host}:{port}/v1 ({workers} worker(s))")
    if workers > 1:
        os.environ[SETTINGS_ENV] = settings.to_json()
        uvicorn.run(
            "smart_core.proxy.settings:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
    else:
        uvicorn.run(settings.build(), host=host, port=port, log_level="warning")


def _settings(
    config: Path | None,
    flags: dict[str, Any],
    task: str,
    store: str | None,
    base_urls: dict[str, str | None],
    prices: dict[str, Any],
) -> Any:
    from ..providers.sdk import parse_model_spec
    from ..proxy.settings import ServeSettings, TaskSettings

    data = load_config(config)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise fail(f"--config {config}: unknown keys {unknown}; valid: {sorted(_TOP_KEYS)}")
    tables = dict(data.get("tasks") or {})
    if flags["reference"] or flags["candidates"] or flags["epsilon"] is not None:
        tables[task] = {k: v for k, v in flags.items() if v is not None}
    elif any(flags.get(k) for k in ("cache", "cache_answers", "embedding")):
        raise fail(
            "--cache, --cache-answers and --embedding set the flags' task (--reference, "
            "--candidates, --epsilon); in a --config, give each [tasks.NAME] table its cache = "
            '"exact"'
        )
    if not tables:
        raise fail(
            "no task: give --reference, --candidates and --epsilon, or a --config with "
            "[tasks.NAME] tables; e.g. smart serve --reference openai:gpt-4o --candidates "
            "openai:gpt-4o-mini --epsilon 0.05"
        )
    tasks = []
    for name, table in tables.items():
        unknown = sorted(set(table) - _TASK_KEYS - _CACHE_KEYS)
        if unknown:
            valid = sorted(_TASK_KEYS | _CACHE_KEYS)
            raise fail(f"task {name!r}: unknown keys {unknown}; valid: {valid}")
        missing = [k for k in ("reference", "candidates", "epsilon") if table.get(k) in (None, [])]
        if missing:
            raise fail(f"task {name!r}: missing {', '.join(missing)}")
        tasks.append(
            TaskSettings(
                name=name,
                reference=parse_model_spec(table["reference"], field="reference").name,
                candidates=[
                    parse_model_spec(c, field="candidates").name
                    for c in split_list(table["candidates"])
                ],
                epsilon=float(table["epsilon"]),
                delta=float(table.get("delta", 0.05)),
                comparator=str(table.get("comparator", "tool_calls")),
                expected_requests=table.get("expected_requests"),
                cascades=table.get("cascades"),
                **{k: table[k] for k in _CACHE_KEYS if k in table},
            )
        )
    urls = {**(data.get("base_urls") or {}), **{k: v for k, v in base_urls.items() if v}}
    return ServeSettings(
        tasks=tasks,
        store=store or data.get("store") or "sqlite:///smart.db",
        default_task=data.get("default_task") or (task if task in tables else None),
        base_urls=urls,
        prices={**(data.get("prices") or {}), **prices},
        timeout=float(data.get("timeout", 60.0)),
        max_retries=int(data.get("max_retries", 4)),
    )
