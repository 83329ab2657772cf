"""``smart bench``: benchmarks that print numbers (paper, overhead, drift, decisions, run,
inflight)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .console import fail, out, progress
from .options import numbers

__all__ = ["bench_app"]

bench_app = typer.Typer(
    help="Benchmarks that print numbers.", no_args_is_help=True, rich_markup_mode=None
)


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
    corrected_published: Annotated[
        bool,
        typer.Option(
            help="Also simulate the published method with its confidence corrected for "
            "repeated looks (failure <= delta, computed exactly), on the same seeds."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Reproduce the SMART paper's simulation (Jo & Trummer 2024) through SMART's policy."""
    from ..jobs.paper import bench_paper as run_bench
    from ..jobs.paper import geometric_mean
    from ..jobs.paper_data import CITATION, DATASETS

    ds = [d.strip() for d in datasets.split(",") if d.strip()]
    unknown = [d for d in ds if d not in DATASETS]
    if unknown:
        raise fail(f"--datasets: unknown {unknown}; choose from {sorted(DATASETS)}")
    try:
        eps = [float(e) for e in epsilons.split(",")]
    except ValueError:
        raise fail(f"--epsilons {epsilons!r}: expected numbers like 0.02,0.05") from None
    if seeds < 1:
        raise fail("--seeds must be >= 1")
    runs = seeds * len(ds) * len(eps) * (2 if corrected_published else 1)
    with progress(runs, "simulating", not as_json) as advance:
        rows = run_bench(
            datasets=ds,
            epsilons=eps,
            seeds=seeds,
            delta=delta,
            method=method,
            progress=advance,
            corrected_published=corrected_published,
        )
    geo = geometric_mean([r.savings for r in rows])
    published = [r.published_savings for r in rows if r.published_savings]
    geo_pub = geometric_mean(published) if len(published) == len(rows) else None
    corrected = [r.corrected_published_savings for r in rows if r.corrected_published_savings]
    geo_corrected = geometric_mean(corrected) if corrected else None
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
            "geometric_mean_corrected_published_savings": geo_corrected,
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
        *(("corrected published", "its violations") if corrected_published else ()),
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
            *(
                (
                    f"{r.corrected_published_savings:.2f}x",
                    f"{r.corrected_published_violation_rate:.0%}",
                )
                if r.corrected_published_savings is not None
                and r.corrected_published_violation_rate is not None
                else ()
            ),
        )
    out.print(table)
    line = f"geometric mean savings {geo:.2f}x"
    if geo_pub:
        line += f" (published method {geo_pub:.2f}x)"
    if geo_corrected:
        line += f", corrected published {geo_corrected:.2f}x"
    out.print(line + f"; oracle {geometric_mean([r.oracle_savings for r in rows]):.2f}x")


@bench_app.command("overhead")
def bench_overhead(
    requests: Annotated[int, typer.Option(help="Timed requests per store.")] = 5000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Per-request decision overhead of the engine, in memory and with SQLite."""
    from ..jobs.overhead import measure_overhead

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


@bench_app.command("drift")
def bench_drift(
    runs: Annotated[int, typer.Option(help="Deployments per drop (each served twice).")] = 20,
    requests: Annotated[int, typer.Option(help="Requests per deployment.")] = 40_000,
    drops: Annotated[
        str, typer.Option(help="Comma-separated drops in agreement at the shift.")
    ] = "0,0.02,0.05,0.10",
    before: Annotated[float, typer.Option(help="The candidate's agreement before.")] = 0.98,
    audit_rate: Annotated[float, typer.Option(help="Share of routed requests audited.")] = 0.01,
    epsilon: Annotated[float, typer.Option(help="Allowed share of differing answers.")] = 0.05,
    delta: Annotated[float, typer.Option(help="Allowed failure probability.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the first deployment.")] = 0,
    logged: Annotated[
        str | None,
        typer.Option(
            help="BEFORE.jsonl,AFTER.jsonl: a real shift between two replay files (questions "
            "of the first, then of the second) instead of simulated drops; needs --reference "
            "and --candidate."
        ),
    ] = None,
    reference: Annotated[str | None, typer.Option(help="--logged: reference model.")] = None,
    candidate: Annotated[str | None, typer.Option(help="--logged: candidate model.")] = None,
    comparator: Annotated[str, typer.Option(help="--logged: comparator.")] = "exact",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """What a shift in agreement does to the guarantee, served with and without drift
    detection: detection delay, false alarms, violations at the end, savings."""
    from ..jobs.drift_bench import run_drift_bench, run_logged_shift_bench, summary_dicts

    if runs < 1 or requests < 100:
        raise fail("--runs must be >= 1 and --requests >= 100")
    # Restarts and order notices are what this command measures, not news for its reader.
    logging.getLogger("smart_core").setLevel(logging.ERROR)
    if logged is None:
        try:
            sizes = [float(d) for d in drops.split(",")]
        except ValueError:
            raise fail(f"--drops {drops!r}: expected numbers like 0,0.05,0.10") from None
        with progress(runs * len(sizes) * 2, "serving", not as_json) as advance:
            rows = run_drift_bench(
                runs=runs,
                requests=requests,
                before=before,
                drops=sizes,
                epsilon=epsilon,
                delta=delta,
                audit_rate=audit_rate,
                seed=seed,
                progress=advance,
            )
        title = f"simulated shift from {before:g} at a random request"
    else:
        from ..jobs.replay import load_replay

        files = [Path(f.strip()) for f in logged.split(",")]
        if len(files) != 2 or not reference or not candidate:
            raise fail("--logged takes BEFORE.jsonl,AFTER.jsonl with --reference and --candidate")
        first, second = (load_replay(f) for f in files)
        with progress(runs * 2, "serving", not as_json) as advance:
            row = run_logged_shift_bench(
                first,
                second,
                reference=reference,
                candidate=candidate,
                comparator=comparator,
                runs=runs,
                requests=requests,
                epsilon=epsilon,
                delta=delta,
                audit_rate=audit_rate,
                seed=seed,
                progress=advance,
            )
        rows = [row]
        title = f"{candidate}: {files[0].name} then {files[1].name}"
    if as_json:
        doc = {
            "requests": requests,
            "runs": runs,
            "epsilon": epsilon,
            "delta": delta,
            "audit_rate": audit_rate,
            "logged": logged,
            "rows": summary_dicts(rows),
        }
        print(json.dumps(doc, indent=2))
        return
    table = Table(title=f"{title}; {runs} runs x {requests:,} requests, audits {audit_rate:g}")
    cols = ("drop", "detected", "delay p50/p90", "false alarms", "end violation on/off")
    for col in (*cols, "post-shift differing on/off", "savings on/off"):
        table.add_column(col, justify="right")
    for r in rows:
        delay = "-" if r.delay_median is None else f"{r.delay_median:,.0f}/{r.delay_p90:,.0f}"
        table.add_row(
            "logged" if r.drop is None else f"{r.drop:g}",
            f"{r.detected:.0%}",
            delay,
            f"{r.false_alarm_runs:.0%}",
            f"{r.violation_end['on']:.0%} / {r.violation_end['off']:.0%}",
            f"{r.post_shift_differing['on']:.2%} / {r.post_shift_differing['off']:.2%}",
            f"{r.savings['on']:.2f}x / {r.savings['off']:.2f}x",
        )
    out.print(table)


@bench_app.command("decisions")
def bench_decisions(
    candidates: Annotated[
        str, typer.Option(help="Comma-separated numbers of candidates.")
    ] = "2,4,8,12,16",
    probes: Annotated[str, typer.Option(help="Comma-separated probes recorded.")] = "1000,100000",
    decisions: Annotated[int, typer.Option(help="Decisions timed per point.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """How long the policy takes to decide, by number of candidates and of probes recorded,
    online and in batch mode (the policy alone, no store)."""
    from ..jobs.decision_bench import time_decisions

    ks, ps = numbers(candidates, "--candidates"), numbers(probes, "--probes")
    if not ks or not ps or min(ks) < 1 or min(ps) < 10 or decisions < 1:
        raise fail("--candidates must be >= 1, --probes >= 10 and --decisions >= 1")
    points = [(m, k, p) for m in ("online", "batch") for k in ks for p in ps]
    rows = []
    with progress(len(points), "timing", not as_json) as advance:
        for mode, k, p in points:
            rows.append(time_decisions(mode, k, p, decisions=decisions))
            if advance:
                advance(1)
    if as_json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    table = Table(title=f"policy decision time, microseconds ({decisions} decisions per point)")
    for col in ("mode", "candidates", "probes", "median", "p90", "mean"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.mode,
            str(r.candidates),
            f"{r.probes:,}",
            f"{r.median_us:,.0f}",
            f"{r.p90_us:,.0f}",
            f"{r.mean_us:,.0f}",
        )
    out.print(table)


@bench_app.command("run")
def bench_run(
    sizes: Annotated[
        str, typer.Option(help="Comma-separated numbers of items, one run each.")
    ] = "1000,10000,100000",
    concurrency: Annotated[int, typer.Option(help="Items in flight at once.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the items' answers and order.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Time `smart run` on generated files of each size, with instant in-process models (no
    network, no server): seconds, time per item, and how per-item time grows with size."""
    from ..jobs.run_bench import bench_run as run_bench
    from ..jobs.run_bench import per_item_ratio

    try:
        ns = sorted({int(s) for s in sizes.split(",") if s.strip()})
    except ValueError:
        raise fail(f"--sizes {sizes!r}: expected whole numbers like 1000,10000") from None
    if not ns or ns[0] < 10 or concurrency < 1:
        raise fail("--sizes must be >= 10 items each and --concurrency >= 1")
    # Batch-mode notices (the commitment, the end of probing) are not news for this reader.
    logging.getLogger("smart_core").setLevel(logging.ERROR)
    with progress(len(ns), "running", not as_json) as advance:
        points = run_bench(
            ns,
            seed=seed,
            concurrency=concurrency,
            progress=(lambda _: advance(1)) if advance else None,
        )
    ratio = per_item_ratio(points)
    if as_json:
        doc = {
            "concurrency": concurrency,
            "seed": seed,
            "points": [p.to_dict() for p in points],
            "per_item_ratio_largest_to_smallest": ratio,
        }
        print(json.dumps(doc, indent=2))
        return
    table = Table(title=f"smart run, instant in-process models, concurrency {concurrency}")
    for col in ("items", "seconds", "us / item", "items / s", "answered", "probes", "savings"):
        table.add_column(col, justify="right")
    for p in points:
        table.add_row(
            f"{p.items:,}",
            f"{p.seconds:.1f}",
            f"{p.us_per_item:,.0f}",
            f"{p.items_per_second:,.0f}",
            f"{p.answered:,}",
            f"{p.probes:,}",
            f"{p.savings:.2f}x",
        )
    out.print(table)
    out.print(
        f"per-item time at {points[-1].items:,} items / at {points[0].items:,}: {ratio:.2f} "
        "(1.00 = linear)"
    )


@bench_app.command("inflight")
def bench_inflight(
    in_flight: Annotated[
        str, typer.Option("--in-flight", help="Comma-separated requests in flight.")
    ] = "1,8,64",
    requests: Annotated[int, typer.Option(help="Requests served per point.")] = 2_000,
    latency_ms: Annotated[
        float, typer.Option(help="Mean pause of the reference, in ms (differing: twice).")
    ] = 5.0,
    seeds: Annotated[int, typer.Option(help="Runs per point (seeds 0..N-1).")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Probes and savings with many requests in flight, decisions ordered (memory, SQLite)
    against unordered (as on Redis/PostgreSQL), online and in batch mode."""
    from ..jobs.inflight_bench import serve_in_flight

    levels = numbers(in_flight, "--in-flight")
    if not levels or min(levels) < 1 or requests < 100 or seeds < 1 or latency_ms < 0:
        raise fail("--in-flight must be >= 1, --requests >= 100, --seeds >= 1, --latency-ms >= 0")
    points = [(m, n, o) for m in ("online", "batch") for n in levels for o in (True, False)]
    rows = []
    with progress(len(points) * seeds, "serving", not as_json) as advance:
        for mode, n, ordered in points:
            for seed in range(seeds):
                rows.append(
                    serve_in_flight(
                        mode,
                        n,
                        ordered=ordered,
                        requests=requests,
                        latency_ms=latency_ms,
                        seed=seed,
                    )
                )
                if advance:
                    advance(1)
    if as_json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    table = Table(title=f"{requests:,} requests, candidate at 0.97, eps 0.05; mean of {seeds} runs")
    for col in ("mode", "in flight", "decisions", "probes", "to candidate", "savings", "differing"):
        table.add_column(col, justify="right")
    for mode, n, ordered in points:
        got = [r for r in rows if (r.mode, r.in_flight, r.ordered) == (mode, n, ordered)]
        table.add_row(
            mode,
            str(n),
            "ordered" if ordered else "unordered",
            f"{sum(r.probes for r in got) / len(got):,.0f}",
            f"{sum(r.routed_share for r in got) / len(got):.1%}",
            f"{sum(r.savings for r in got) / len(got):.2f}x",
            f"{sum(r.disagreement for r in got) / len(got):.2%}",
        )
    out.print(table)
