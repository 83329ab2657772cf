"""PNG charts for ``smart run``, ``smart report`` and ``smart demo`` (matplotlib, Agg backend).

One figure, three panels, over the items in the order they were answered:

1. cumulative spend vs. the estimated cost had the reference answered everything;
2. share of traffic per route so far;
3. the guarantee, in the terms of the run's mode:

   * batch (a known number of items, as in ``smart run`` and the demo): a count of answers. The
     budget (``epsilon * N`` answers may differ), the guaranteed ceiling on how many of the
     answers so far may differ (each item's certificate's ``differing_at_most``, when the rows
     carry it), and -- when known, as in the simulated demo -- how many actually differed. All
     three are counts of the same thing, so a reader sees at a glance that the ceiling stays
     under the budget and the actual count under the ceiling.
   * online: the largest share of differing answers the mix in force allows (``1 - bound``)
     against epsilon, and the realized share when known.

Legends sit below their panel so that they never cover a line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_ledger", "plot_run", "run_figure"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _short(route: str) -> str:
    return route.split(":", 1)[-1]


def reference_curve(timeline: Sequence[Mapping[str, Any]]) -> list[float]:
    """Cumulative reference-only cost: exact where the reference answered, else its mean cost."""
    known = [r["ref_cost"] for r in timeline if r.get("ref_cost") is not None]
    mean = sum(known) / len(known) if known else 0.0
    total, out = 0.0, []
    for r in timeline:
        total += r["ref_cost"] if r.get("ref_cost") is not None else mean
        out.append(total)
    return out


def plot_run(
    timeline: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    epsilon: float,
    title: str,
    realized: Sequence[float] | None = None,
    note: str | None = None,
    batch_size: int | None = None,
    differing_at_most: float | None = None,
) -> Path:
    """Write the three-panel chart of a run to ``path`` (PNG) and return the path.

    ``timeline`` rows have ``route``, ``cost``, ``ref_cost`` (None unless the reference
    answered), and the item's certificate fields ``bound``, ``effective_epsilon`` and, in batch
    mode, ``batch_size``, ``budget`` and ``differing_at_most``; ``realized`` is the running
    share of differing answers, if known. ``batch_size`` marks a batch run whose rows do not say
    so themselves; ``differing_at_most`` is the guaranteed count now (the ledger's), drawn at the
    last item when the rows do not carry it.
    """
    plt = _pyplot()
    fig = run_figure(
        timeline,
        epsilon=epsilon,
        title=title,
        realized=realized,
        note=note,
        batch_size=batch_size,
        differing_at_most=differing_at_most,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_figure(
    timeline: Sequence[Mapping[str, Any]],
    *,
    epsilon: float,
    title: str,
    realized: Sequence[float] | None = None,
    note: str | None = None,
    batch_size: int | None = None,
    differing_at_most: float | None = None,
):
    """The figure :func:`plot_run` saves (a matplotlib ``Figure``; the caller closes it)."""
    plt = _pyplot()
    n = len(timeline)
    xs = list(range(1, n + 1))
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.6))
    fig.suptitle(title, fontsize=12)

    ax = axes[0]
    spent, total = [], 0.0
    for r in timeline:
        total += r["cost"]
        spent.append(total)
    ref = reference_curve(timeline)
    ax.plot(xs, ref, label="reference only (estimate)", color="tab:red")
    ax.plot(xs, spent, label="SMART (paid)", color="tab:green")
    ax.fill_between(xs, spent, ref, color="tab:green", alpha=0.12)
    if n and spent[-1] > 0:
        ax.set_title(
            f"cost: \\${spent[-1]:.4f} paid vs \\${ref[-1]:.4f} ({ref[-1] / spent[-1]:.2f}x less)"
        )
    else:
        ax.set_title("cost")
    ax.set_xlabel("items answered")
    ax.set_ylabel("USD (cumulative)")
    _legend_below(ax)

    ax = axes[1]
    routes: list[str] = []
    for r in timeline:
        if r["route"] not in routes:
            routes.append(r["route"])
    counts = {route: 0 for route in routes}
    shares: dict[str, list[float]] = {route: [] for route in routes}
    for i, r in enumerate(timeline, start=1):
        counts[r["route"]] += 1
        for route in routes:
            shares[route].append(counts[route] / i)
    if routes:
        labels = [f"{_short(rt)} ({counts[rt] / n:.0%})" for rt in routes]
        ax.stackplot(xs, [shares[rt] for rt in routes], labels=labels, alpha=0.85)
        _legend_below(ax)
    ax.set_ylim(0, 1)
    ax.set_title("share of traffic per route (so far)")
    ax.set_xlabel("items answered")

    size = _batch_size(timeline, epsilon, batch_size)
    if size is not None:
        _batch_panel(axes[2], timeline, xs, epsilon, size, realized, differing_at_most)
    else:
        _online_panel(axes[2], timeline, xs, epsilon, realized)

    if note:
        fig.text(0.5, 0.005, note, ha="center", fontsize=9, style="italic")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return fig


def _legend_below(ax, ncol: int = 1) -> None:
    """Put the legend under the panel's x-axis label, where it cannot hide a line."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, ncol=ncol, frameon=False)


def _batch_size(
    timeline: Sequence[Mapping[str, Any]], epsilon: float, given: int | None
) -> int | None:
    """The batch's size if this is a batch run, else None.

    Rows written from certificates that carry ``batch_size`` say so; older rows only show it by
    an effective epsilon above epsilon (the slack reference answers leave in a batch budget,
    which online mode never has), and their batch is taken to be the rows themselves.
    """
    if given:
        return given
    for r in timeline:
        if r.get("batch_size"):
            return int(r["batch_size"])
    if any(r.get("effective_epsilon", epsilon) > epsilon + 1e-12 for r in timeline):
        return len(timeline)
    return None


def _batch_panel(ax, timeline, xs, epsilon, size, realized, final) -> None:
    """Counts of answers: budget, guaranteed ceiling so far, and the actual count if known."""
    budget = next((r["budget"] for r in timeline if r.get("budget") is not None), None)
    if budget is None:
        budget = epsilon * size
    allowed = math.floor(budget + 1e-9)
    ax.axhline(
        allowed,
        color="tab:red",
        linestyle="--",
        zorder=3,  # drawn over a ceiling that reaches it (a saturated candidate)
        label=f"budget: at most {allowed:,} of the {size:,} answers may differ"
        f" (epsilon = {epsilon:g})",
    )
    top = [allowed]
    ceiling = [r.get("differing_at_most") for r in timeline]
    if xs and all(c is not None for c in ceiling):
        ceiling_counts = [math.floor(c + 1e-9) for c in ceiling]
        ax.step(
            xs,
            ceiling_counts,
            where="post",
            color="tab:blue",
            lw=2.5,
            alpha=0.7,
            label="guaranteed: at most this many of the answers so far differ",
        )
        top += ceiling_counts
        headline = f"at most {ceiling_counts[-1]:,} of {size:,} may differ (budget {allowed:,})"
    elif xs and final is not None:
        # Rows from before certificates carried the count: the ledger's count now, at the end.
        count = math.floor(final + 1e-9)
        ax.plot(
            [xs[-1]],
            [count],
            marker="o",
            color="tab:blue",
            linestyle="none",
            label=f"guaranteed now: at most {count:,} of the answers differ",
        )
        top.append(count)
        headline = f"at most {count:,} of {size:,} may differ (budget {allowed:,})"
    else:
        headline = f"at most {allowed:,} of {size:,} may differ (the budget)"
    if realized is not None:
        actual = [round(share * i) for i, share in enumerate(realized, start=1)]
        ax.plot(xs, actual, color="tab:orange", label="actually differed (known in a simulation)")
        top += actual
    ax.set_ylim(0, max(top, default=1) * 1.15 + 1)
    ax.set_xlim(0, max(len(xs), 1) * 1.03)  # room for the marker at the last item
    ax.set_title(f"answers differing from the reference's\n{headline}", fontsize=10)
    ax.set_xlabel("items answered")
    ax.set_ylabel("answers (count)")
    _legend_below(ax)


def _online_panel(ax, timeline, xs, epsilon, realized) -> None:
    """Shares: what the mix in force allows per request, against epsilon."""
    allowed = [1.0 - r["bound"] for r in timeline]
    ax.plot(
        xs,
        allowed,
        label="guaranteed: at most this share may differ (1 - bound)",
        color="tab:blue",
        lw=1,
    )
    ax.axhline(epsilon, color="tab:red", linestyle="--", label=f"target: epsilon = {epsilon:g}")
    if realized is not None:
        ax.plot(xs, list(realized), label="actually differed (share so far)", color="tab:orange")
    ax.set_ylim(0, max([epsilon * 2, *allowed, *(realized or [])], default=epsilon * 2) * 1.05)
    ax.set_title("share of answers differing from the reference")
    ax.set_xlabel("requests answered")
    ax.set_ylabel("share")
    _legend_below(ax)


def plot_ledger(ledgers: Sequence[Any], path: str | Path, *, title: str) -> Path:
    """A summary chart when no per-item history exists: spend vs reference-only and mix."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    fig.suptitle(title, fontsize=12)
    names = [lg.task for lg in ledgers]
    xs = range(len(names))
    ax = axes[0]
    cached = any(_cache_looked(lg) for lg in ledgers)
    width = 0.27 if cached else 0.4
    ax.bar(
        [x - width / 2 for x in xs], [lg.reference_estimate for lg in ledgers], width, label="ref."
    )
    ax.bar([x + width / 2 for x in xs], [lg.spent for lg in ledgers], width, label="SMART")
    if cached:
        saved = [getattr(lg, "cache_saved", 0.0) for lg in ledgers]
        ax.bar([x + 1.5 * width for x in xs], saved, width, label="saved by the answer cache")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("USD")
    ax.set_title("spend vs reference only (estimate)")
    _legend_below(ax, ncol=3 if cached else 2)
    ax = axes[1]
    # Requests each route was sent, not the mix in force: in batch mode that mix is only the
    # plan for the items not yet decided (at the end of a batch, whatever route is left over).
    bottom = [0.0] * len(names)
    routes = sorted({r for lg in ledgers for r in _routed_shares(lg)})
    for route in routes:
        vals = [_routed_shares(lg).get(route, 0.0) for lg in ledgers]
        ax.bar(list(xs), vals, bottom=bottom, label=_short(route))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1)
    caption = cache_caption(ledgers)
    ax.set_title("share of requests per route (so far)" + (f"\n{caption}" if caption else ""))
    _legend_below(ax, ncol=3)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cache_looked(ledger: Any) -> int:
    return int(getattr(ledger, "cache_hits", 0) or 0) + int(getattr(ledger, "cache_misses", 0) or 0)


def cache_caption(ledgers: Sequence[Any]) -> str:
    """What the answer cache did, for the chart ("" where no task looked anything up)."""
    parts = []
    for lg in ledgers:
        looked = _cache_looked(lg)
        if looked:
            hits = int(lg.cache_hits)
            parts.append(
                f"{lg.task}: cache {hits} hits / {looked - hits} misses "
                f"({hits / looked:.0%}), saved ${lg.cache_saved:.4f}"
            )
    return "; ".join(parts)


def _routed_shares(ledger: Any) -> dict[str, float]:
    routed = getattr(ledger, "routed", None) or {}
    total = sum(routed.values())
    if not total:
        return dict(ledger.mix)
    return {r: k / total for r, k in routed.items() if k}
