"""``smart bench run``: ``smart run``'s engine on generated files of growing size.

Each size is one complete :func:`~smart_core.jobs.batch_run.run_batch` in a fresh directory:
a JSONL file of items, the run's SQLite state beside its output, and three in-process async
endpoints (a reference and two candidates) that answer from a seeded table with fixed token
usage, so that nothing but SMART's own work is timed: no network, no server, no sleeping.
Linear time means the time per item stays flat as the file grows; the ratio of the per-item
time at the largest size to that at the smallest says how flat.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..engine.router import Endpoint
from ..task.answer import Answer
from ..task.usage import Usage
from .batch_run import BatchRun, run_batch

__all__ = [
    "RunBenchPoint",
    "SeededModels",
    "bench_run",
    "per_item_ratio",
    "time_run",
    "write_items",
]

REFERENCE = "openai:gpt-4o"
#: Candidates and the share of items on which each answers differently from the reference.
CANDIDATES: dict[str, float] = {
    "openai:gpt-4o-mini": 0.02,
    "anthropic:claude-3-5-haiku-latest": 0.08,
}
LABELS = "ABCD"
PROMPT = "Label {text}"


@dataclass(frozen=True)
class RunBenchPoint:
    """One timed run of ``items`` items."""

    items: int
    seconds: float
    answered: int
    failed: int
    probes: int
    savings: float

    @property
    def us_per_item(self) -> float:
        return self.seconds / self.items * 1e6

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "us_per_item": self.us_per_item,
            "items_per_second": self.items_per_second,
        }


def write_items(path: Path, n: int, *, seed: int = 0) -> None:
    """``n`` items ``{"id", "text"}``; the text's last word is the item's index, which the
    endpoints read back from the prompt."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"item-{seed}-{i}", "text": f"text of item {i}"}) + "\n")


class SeededModels:
    """Answers for every (model, item) drawn once from a seeded generator: the reference's
    label, and for each candidate the reference's label or, on its share of items, another."""

    def __init__(self, n: int, *, seed: int = 0) -> None:
        rng = random.Random(seed)
        truth = [rng.choice(LABELS) for _ in range(n)]
        self.table: dict[str, list[str]] = {REFERENCE: truth}
        for model, wrong in CANDIDATES.items():
            self.table[model] = [
                rng.choice([x for x in LABELS if x != t]) if rng.random() < wrong else t
                for t in truth
            ]
        self.calls = 0

    def endpoint(self, model: str) -> Endpoint:
        answers = self.table[model]

        async def call(prompt: str) -> Answer:
            self.calls += 1
            index = int(prompt.rsplit(" ", 1)[-1])
            return Answer(text=answers[index], usage=Usage(200, 1))

        return call

    def endpoints(self) -> dict[str, Endpoint]:
        return {m: self.endpoint(m) for m in self.table}


def time_run(
    n: int,
    workdir: Path,
    *,
    seed: int = 0,
    epsilon: float = 0.05,
    concurrency: int = 32,
) -> RunBenchPoint:
    """Write ``n`` items under ``workdir`` and time one ``run_batch`` over them."""
    workdir.mkdir(parents=True, exist_ok=True)
    items = workdir / f"items-{n}.jsonl"
    write_items(items, n, seed=seed)
    run = BatchRun(
        input=items,
        prompt=PROMPT,
        reference=REFERENCE,
        candidates=list(CANDIDATES),
        epsilon=epsilon,
        output=workdir / f"out-{n}.jsonl",
        comparator="exact",
        concurrency=concurrency,
        seed=seed,
    )
    models = SeededModels(n, seed=seed)
    started = time.perf_counter()
    result = asyncio.run(run_batch(run, models.endpoints()))
    seconds = time.perf_counter() - started
    ledger = result.ledger
    return RunBenchPoint(
        items=n,
        seconds=seconds,
        answered=result.done,
        failed=len(result.failed),
        probes=int(ledger.probes),
        savings=float(ledger.savings),
    )


def bench_run(
    sizes: Sequence[int] = (1_000, 10_000, 100_000),
    *,
    workdir: Path | None = None,
    seed: int = 0,
    concurrency: int = 32,
    progress: Callable[[RunBenchPoint], object] | None = None,
) -> list[RunBenchPoint]:
    """One timed run per size, smallest first, each in its own files (removed afterwards
    unless ``workdir`` is given)."""
    points = []
    with tempfile.TemporaryDirectory(prefix="smart-bench-run-") as tmp:
        root = workdir or Path(tmp)
        for n in sorted(sizes):
            point = time_run(n, root / f"n{n}", seed=seed, concurrency=concurrency)
            points.append(point)
            if progress is not None:
                progress(point)
    return points


def per_item_ratio(points: Sequence[RunBenchPoint]) -> float:
    """Per-item time at the largest size over that at the smallest (1.0: perfectly linear)."""
    return points[-1].us_per_item / points[0].us_per_item
