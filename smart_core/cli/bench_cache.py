"""``smart bench nn``, ``smart bench index`` and ``smart bench qqp``: the semantic cache's
parts, measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .bench import bench_app
from .console import err, out
from .options import numbers

__all__ = ["bench_index_command", "bench_nn_command", "bench_qqp_command"]


@bench_app.command("nn")
def bench_nn_command(
    sizes: Annotated[str, typer.Option(help="Entries, comma-separated.")] = "10000,1000000",
    dimensions: Annotated[int, typer.Option(help="Vector dimensions.")] = 256,
    queries: Annotated[int, typer.Option(help="Timed lookups per size and method.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Nearest-neighbour lookup, one query at a time: numpy brute force against faiss."""
    from ..jobs.cache_bench import bench_nearest

    rows = bench_nearest(numbers(sizes, "--sizes"), dimensions=dimensions, queries=queries)
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


@bench_app.command("index")
def bench_index_command(
    sizes: Annotated[str, typer.Option(help="Entries, comma-separated.")] = "10000,100000",
    dimensions: Annotated[str, typer.Option(help="Dimensions, comma-separated.")] = "256,4096",
    queries: Annotated[int, typer.Option(help="Timed lookups per size and setting.")] = 100,
    threshold: Annotated[int, typer.Option(help="Entries past which IVF is used.")] = 20_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """The semantic cache's index, filled one entry at a time, exact and with IVF past the
    threshold: fill time (trainings included), lookup time, recall against exact."""
    from ..jobs.cache_bench import bench_semantic_index

    rows = bench_semantic_index(
        numbers(sizes, "--sizes"),
        dimensions=numbers(dimensions, "--dimensions"),
        queries=queries,
        threshold=threshold,
    )
    if as_json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    table = Table(title=f"SemanticIndex lookups, IVF past {threshold:,} entries")
    for col in ("index", "dims", "entries", "fill s", "query ms median", "p90", "recall@1"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.method,
            str(r.dimensions),
            f"{r.entries:,}",
            f"{r.build_seconds:.1f}",
            f"{r.query_ms_median:.3f}",
            f"{r.query_ms_p90:.3f}",
            f"{r.recall_at_1:.3f}",
        )
    out.print(table)


@bench_app.command("qqp")
def bench_qqp_command(
    pairs: Annotated[int, typer.Option(help="Pairs read from the file (0: all 40,427).")] = 10000,
    thresholds: Annotated[str, typer.Option(help="Similarity thresholds.")] = "0.8,0.9",
    epsilon: Annotated[
        str,
        typer.Option(help="Targets (comma-separated) for the threshold the bounds choose."),
    ] = "0.05,0.1",
    audit: Annotated[float, typer.Option(help="Share of lookups audited, as probes.")] = 0.1,
    embedder: Annotated[
        str,
        typer.Option(
            help="Embedders, comma-separated: offline (hashed char n-grams), langchain "
            "(OpenAIEmbeddings on a local fake server the bench starts), or module:factory."
        ),
    ] = "offline",
    dimensions: Annotated[int, typer.Option(help="Vector dimensions.")] = 2**12,
    data: Annotated[
        Path | None,
        typer.Option(help="Pairs file (default ../shared/data/qqp/dev.jsonl.gz)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Hit and false-hit rates of each embedder on Quora duplicate-question pairs
    (../shared/data/qqp/dev.jsonl.gz): cache each pair's first question, look up the second."""
    from ..errors import ConfigError
    from ..jobs.bench_embedders import open_embedders
    from ..jobs.cache_bench import bench_qqp_embedders, load_qqp
    from .console import fail

    try:
        rows = load_qqp(data, limit=pairs or None) if data else load_qqp(limit=pairs or None)
    except FileNotFoundError as exc:  # development data only: skip, saying why
        err.print(f"skipped: {exc}", highlight=False)
        raise typer.Exit(code=0) from None
    epsilons = numbers(epsilon, "--epsilon", float)
    names = [n.strip() for n in embedder.split(",") if n.strip()]
    try:
        with open_embedders(names, dimensions) as embedders:
            runs = bench_qqp_embedders(
                rows,
                embedders,
                numbers(thresholds, "--thresholds", float),
                epsilons=epsilons,
                audit_share=audit,
            )
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps([r.to_dict() for r in runs], indent=2))
        return
    for run in runs:
        _print_run(run, len(rows), epsilons)
    if len(runs) > 1:
        out.print(
            "The local server's /v1/embeddings vectors are the offline embedder's (hashed "
            "character n-grams): equal rows mean the real class, its batching, dimensions and "
            "network path give the same vectors; the embed times are what they cost.",
            highlight=False,
        )


def _print_run(run, n_pairs: int, epsilons: list[float]) -> None:
    title = (
        f"QQP, {n_pairs:,} pairs, embedder {run.embedder} ({run.dimensions} dimensions): "
        f"{run.texts:,} questions embedded in {run.embed_seconds:.1f} s"
    )
    table = Table(title=title)
    cols = ("threshold", "chosen by", "hit rate", "false hits (of hits)", "false hits (of all)")
    for col in (*cols, "duplicates served"):
        table.add_column(col, justify="right")
    for r in run.rows:
        chosen = (
            r.chosen_by if r.bound is None else f"bounds, eps {r.epsilon:g} (lower {r.bound:.3f})"
        )
        table.add_row(
            f"{r.threshold:g}",
            chosen,
            f"{r.hit_rate:.1%}",
            f"{r.false_hit_rate:.1%}",
            f"{r.to_dict()['false_hits_of_lookups']:.1%}",
            f"{r.duplicate_recall:.1%}",
        )
    out.print(table)
    for eps in epsilons:
        if run.chosen(eps) is None:
            out.print(f"No threshold is certified at epsilon={eps:g}: the cache serves no hits.")
