"""PNG charts for ``smart run``, ``smart report`` and ``smart demo`` (matplotlib, Agg backend).

One figure, three panels, over the items in the order they were answered:

1. cumulative spend vs. the estimated cost had the reference answered everything;
2. share of traffic per route so far;
3. the guarantee: the largest share of differing answers the policy in force allowed
   (``1 - bound`` of each item's certificate) against epsilon, and -- when known, as in the demo --
   the realized share of answers that differed from the reference's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_ledger", "plot_run"]


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
) -> Path:
    """Write the three-panel chart of a run to ``path`` (PNG) and return the path.

    ``timeline`` rows have ``route``, ``cost``, ``ref_cost`` (None unless the reference
    answered), ``bound``; ``realized`` is the running share of differing answers, if known.
    """
    plt = _pyplot()
    n = len(timeline)
    xs = list(range(1, n + 1))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
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
    ax.legend(loc="upper left")

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
        ax.legend(loc="lower left", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("share of traffic per route (so far)")
    ax.set_xlabel("items answered")

    ax = axes[2]
    allowed = [1.0 - r["bound"] for r in timeline]
    ax.plot(xs, allowed, label="allowed per request (1 - bound)", color="tab:blue", lw=1)
    batch = any(r.get("effective_epsilon", epsilon) > epsilon + 1e-12 for r in timeline)
    if batch:
        ax.plot(
            xs,
            [r.get("effective_epsilon", epsilon) for r in timeline],
            label="per-request target (batch slack)",
            color="tab:purple",
            lw=1,
            linestyle=":",
        )
    ax.axhline(epsilon, color="tab:red", linestyle="--", label=f"epsilon = {epsilon:g} (batch)")
    if realized is not None:
        ax.plot(xs, list(realized), label="realized differing share", color="tab:orange")
    ax.set_ylim(0, max([epsilon * 2, *allowed, *(realized or [])], default=epsilon * 2) * 1.05)
    ax.set_title("share of answers differing from the reference")
    ax.set_xlabel("items answered")
    ax.legend(loc="upper right", fontsize=8)

    if note:
        fig.text(0.5, 0.005, note, ha="center", fontsize=9, style="italic")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ledger(ledgers: Sequence[Any], path: str | Path, *, title: str) -> Path:
    """A summary chart when no per-item history exists: spend vs reference-only and mix."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    fig.suptitle(title, fontsize=12)
    names = [lg.task for lg in ledgers]
    xs = range(len(names))
    ax = axes[0]
    ax.bar([x - 0.2 for x in xs], [lg.reference_estimate for lg in ledgers], 0.4, label="ref.")
    ax.bar([x + 0.2 for x in xs], [lg.spent for lg in ledgers], 0.4, label="SMART")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("USD")
    ax.set_title("spend vs reference only (estimate)")
    ax.legend()
    ax = axes[1]
    bottom = [0.0] * len(names)
    routes = sorted({r for lg in ledgers for r in lg.mix})
    for route in routes:
        vals = [lg.mix.get(route, 0.0) for lg in ledgers]
        ax.bar(list(xs), vals, bottom=bottom, label=_short(route))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1)
    ax.set_title("current mix")
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
