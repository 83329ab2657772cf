"""``smart bench nn`` and ``smart bench qqp``: the semantic cache's parts, measured."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .bench import bench_app
from .console import err, out

__all__ = ["bench_nn_command", "bench_qqp_command"]


@bench_app.command("nn")
def bench_nn_command(
    sizes: Annotated[str, typer.Option(help="Entries, comma-separated.")] = "10000,1000000",
    dimensions: Annotated[int, typer.Option(help="Vector dimensions.")] = 256,
    queries: Annotated[int, typer.Option(help="Timed lookups per size and method.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Nearest-neighbour lookup, one query at a time: numpy brute force against faiss."""
    from ..jobs.cache_bench import bench_nearest

    rows = bench_nearest([int(s) for s in sizes.split(",")], dimensions=dimensions, queries=queries)
    if as_json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    table = Table(title=f"nearest neighbour, {dimensions} dimensions, one query at a time")
    for col in ("method", "entries", "build s", "query ms median", "p90", "recall@1", "MB"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.method,
            f"{r.entries:,}",
            f"{r.build_seconds:.1f}",
            f"{r.query_ms_median:.3f}",
            f"{r.query_ms_p90:.3f}",
            f"{r.recall_at_1:.3f}",
            f"{r.memory_mb:.0f}",
        )
    out.print(table)


@bench_app.command("qqp")
def bench_qqp_command(
    pairs: Annotated[int, typer.Option(help="Pairs read from the file (0: all 40,427).")] = 10000,
    thresholds: Annotated[str, typer.Option(help="Similarity thresholds.")] = "0.8,0.9",
    epsilon: Annotated[
        float, typer.Option(help="Target for the threshold the bounds choose (false hits).")
    ] = 0.05,
    audit: Annotated[float, typer.Option(help="Share of lookups audited, as probes.")] = 0.1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Hit and false-hit rates of the offline embedder on Quora duplicate-question pairs
    (../shared/data/qqp/dev.jsonl.gz): cache each pair's first question, look up the second."""
    from ..jobs.cache_bench import bench_qqp, load_qqp

    try:
        data = load_qqp(limit=pairs or None)
    except FileNotFoundError as exc:  # development data only: skip, saying why
        err.print(f"skipped: {exc}", highlight=False)
        raise typer.Exit(code=0) from None
    rows = bench_qqp(
        data, [float(t) for t in thresholds.split(",")], epsilon=epsilon, audit_share=audit
    )
    if as_json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    table = Table(title=f"QQP, {len(data):,} pairs, offline embedder (hashed char 2-4-grams)")
    cols = ("threshold", "chosen by", "hit rate", "false hits (of hits)", "false hits (of all)")
    for col in (*cols, "duplicates served"):
        table.add_column(col, justify="right")
    for r in rows:
        chosen = r.chosen_by if r.bound is None else f"bounds (lower {r.bound:.3f})"
        table.add_row(
            f"{r.threshold:g}",
            chosen,
            f"{r.hit_rate:.1%}",
            f"{r.false_hit_rate:.1%}",
            f"{r.to_dict()['false_hits_of_lookups']:.1%}",
            f"{r.duplicate_recall:.1%}",
        )
    out.print(table)
    if not any(r.chosen_by == "bounds" for r in rows):
        out.print(f"No threshold is certified at epsilon={epsilon:g}: the cache serves no hits.")
