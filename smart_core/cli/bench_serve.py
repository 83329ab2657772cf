"""``smart bench serve``: throughput and added latency of ``smart serve`` (registered on
``smart bench``)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .bench import bench_app
from .console import err, out

__all__ = ["bench_serve_command"]


@bench_app.command("serve")
def bench_serve_command(
    requests: Annotated[int, typer.Option(help="Requests per configuration.")] = 2000,
    concurrency: Annotated[int, typer.Option(help="Clients in flight at once.")] = 64,
    workers: Annotated[str, typer.Option(help="Comma-separated worker counts.")] = "1,4",
    store: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=URL of a store to measure (repeatable), e.g. redis=redis://127.0.0.1:6379/0"
            "; default a fresh SQLite file."
        ),
    ] = None,
    latency: Annotated[float, typer.Option(help="The fake model's response time, seconds.")] = 0.0,
    with_servers: Annotated[
        bool,
        typer.Option(
            "--with-servers",
            help="Also measure Redis and PostgreSQL stores on servers started for the run "
            "(from the Debian packages scripts/services.sh installs).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Throughput and p50/p99 latency through smart serve against calling the model directly.

    One run measures the local fake model server directly, then through `smart serve` (a real
    process) for every store and worker count, with the same concurrent clients; ratios compare
    each configuration with the direct baseline of the same run.
    """
    import contextlib

    from ..jobs.serve_bench import bench_serve

    stores = dict(s.split("=", 1) for s in store) if store else {"sqlite": "sqlite:///"}
    counts = tuple(int(w) for w in workers.split(",") if w.strip())
    if not as_json:
        err.print(f"smart bench serve: {requests} requests x {concurrency} clients per point")
    with contextlib.ExitStack() as servers:
        if with_servers:
            from ..testing.servers import PostgresServer, RedisServer

            stores["redis"] = servers.enter_context(RedisServer()).url
            stores["postgresql"] = servers.enter_context(PostgresServer()).url
        rows = bench_serve(
            stores=stores,
            workers=counts,
            requests=requests,
            concurrency=concurrency,
            latency=latency,
        )
    if as_json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    table = Table(title="smart serve against calling the model directly")
    for col in (
        "target",
        "store",
        "workers",
        "req/s",
        "p50 ms",
        "p99 ms",
        "throughput x",
        "+p50",
        "+p99",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.target,
            r.store,
            str(r.workers or "-"),
            f"{r.throughput:.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.throughput_ratio:.2f}",
            f"{r.added_p50_ms:+.1f}",
            f"{r.added_p99_ms:+.1f}",
        )
    out.print(table)
