"""``smart bench drift``: what a shift in traffic does to the guarantee, with and without detection.

Each run serves ``requests`` online requests through :class:`~smart_core.SmartRouter` (memory
store, simulated endpoints): a cheap candidate agrees with the reference at ``before`` until a
shift at a random request, then at ``before - drop``. The same run (same shift, same answers) is
served twice, with drift detection on and off, and measured:

* **detection delay**: requests from the shift to the candidate's first restart (and false alarms:
  restarts before the shift);
* **violation at the end**: the mix in force after the last request has a true agreement below
  ``1 - epsilon`` (the promise "at every moment" broken, and still broken);
* **post-shift share**: the share of answers served after the shift that differ from the
  reference's, against epsilon;
* **savings**: reference-only cost over what was paid, so the cost of detection shows.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..engine.router import SmartRouter
from ..policy import keys as K
from ..stores import MemoryStore
from ..task.answer import Answer
from ..task.config import ModelSpec, SmartConfig
from ..task.usage import Usage
from .replay import ReplayItem

__all__ = [
    "DriftRun",
    "DriftSummary",
    "drift_run",
    "logged_shift_run",
    "run_drift_bench",
    "run_logged_shift_bench",
    "summarize",
    "summary_dicts",
]

_REF, _CAND = "gpt-4o", "gpt-4o-mini"
_USAGE = Usage(1000, 100)


@dataclass(frozen=True, slots=True)
class DriftRun:
    """One simulated deployment, served once."""

    shift_at: int
    detection: bool
    detected_after: int | None  # requests from the shift to the first restart after it
    false_alarms: int  # restarts before the shift
    end_agreement: float  # true agreement of the mix in force at the end
    post_shift_differing: float  # share of answers after the shift that differ
    savings: float


@dataclass(frozen=True, slots=True)
class DriftSummary:
    """Runs of one drop size, with and without detection."""

    drop: float | None  # None: a logged shift, whose drop is whatever the data hold
    runs: int
    detected: float  # share of runs (with detection) whose shift was detected
    delay_median: float | None
    delay_p90: float | None
    false_alarm_runs: float
    violation_end: dict[str, float]  # "on"/"off": share of runs violating at the end
    post_shift_over_epsilon: dict[str, float]
    post_shift_differing: dict[str, float]  # mean share after the shift
    savings: dict[str, float]  # geometric mean


def drift_run(
    seed: int,
    *,
    requests: int,
    before: float,
    drop: float,
    epsilon: float,
    delta: float,
    audit_rate: float,
    detection: bool,
) -> DriftRun:
    """Serve one simulated deployment (see the module docstring) and measure it."""
    rng = random.Random(seed)
    shift_at = rng.randrange(requests // 4, 3 * requests // 4)
    draws = [rng.random() for _ in range(requests)]
    after = before - drop

    def agrees(x: int) -> bool:
        return draws[x] < (before if x < shift_at else after)

    async def reference(x: int) -> Answer:
        return Answer(text=f"r{x}", usage=_USAGE)

    async def candidate(x: int) -> Answer:
        return Answer(text=f"r{x}" if agrees(x) else "other", usage=_USAGE)

    config = SmartConfig(
        task="drift",
        epsilon=epsilon,
        delta=delta,
        reference=_REF,
        candidates=[_CAND],
        expected_requests=requests,
        audit_rate=audit_rate,
        drift_detection=detection,
    )
    endpoints = {_REF: reference, _CAND: candidate}
    return _serve(config, endpoints, seed, shift_at, requests, agrees, after)


def run_drift_bench(
    *,
    runs: int = 20,
    requests: int = 20_000,
    before: float = 0.98,
    drops: Sequence[float] = (0.02, 0.05, 0.10),
    epsilon: float = 0.05,
    delta: float = 0.05,
    audit_rate: float = 0.01,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[DriftSummary]:
    """Every drop size, ``runs`` deployments each, with and without detection (``progress``
    is called with 1 after each deployment served)."""
    out = []
    for drop in drops:

        def serve(i: int, detection: bool, drop: float = drop) -> DriftRun:
            return drift_run(
                i,
                requests=requests,
                before=before,
                drop=drop,
                epsilon=epsilon,
                delta=delta,
                audit_rate=audit_rate,
                detection=detection,
            )

        out.append(summarize(drop, _paired(serve, runs, seed, progress), epsilon))
    return out


def run_logged_shift_bench(
    before: Sequence[ReplayItem],
    after: Sequence[ReplayItem],
    *,
    reference: str,
    candidate: str,
    comparator: str,
    runs: int = 20,
    requests: int = 20_000,
    epsilon: float = 0.05,
    delta: float = 0.05,
    audit_rate: float = 0.01,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> DriftSummary:
    """``runs`` deployments of :func:`logged_shift_run`, with and without detection."""

    def serve(i: int, detection: bool) -> DriftRun:
        return logged_shift_run(
            before,
            after,
            i,
            reference=reference,
            candidate=candidate,
            comparator=comparator,
            requests=requests,
            epsilon=epsilon,
            delta=delta,
            audit_rate=audit_rate,
            detection=detection,
        )

    return summarize(None, _paired(serve, runs, seed, progress), epsilon)


def _paired(
    serve: Callable[[int, bool], DriftRun],
    runs: int,
    seed: int,
    progress: Callable[[int], None] | None,
) -> list[DriftRun]:
    """Each deployment (seeds ``seed .. seed + runs - 1``) served with detection, then without."""
    out = []
    for i in range(seed, seed + runs):
        for detection in (True, False):
            out.append(serve(i, detection))
            if progress is not None:
                progress(1)
    return out


def summarize(drop: float | None, runs: Sequence[DriftRun], epsilon: float) -> DriftSummary:
    """One row from the deployments of one drop, each served with and without detection."""
    by_mode = {
        "on": [r for r in runs if r.detection],
        "off": [r for r in runs if not r.detection],
    }
    on, n = by_mode["on"], max(len(by_mode["on"]), 1)
    delays = sorted(r.detected_after for r in on if r.detected_after is not None)
    return DriftSummary(
        drop=drop,
        runs=len(on),
        detected=len(delays) / n,
        delay_median=statistics.median(delays) if delays else None,
        delay_p90=delays[min(len(delays) - 1, int(0.9 * len(delays)))] if delays else None,
        false_alarm_runs=sum(1 for r in on if r.false_alarms) / n,
        violation_end={
            m: sum(1 for r in rs if r.end_agreement < 1.0 - epsilon) / max(len(rs), 1)
            for m, rs in by_mode.items()
        },
        post_shift_over_epsilon={
            m: sum(1 for r in rs if r.post_shift_differing > epsilon) / max(len(rs), 1)
            for m, rs in by_mode.items()
        },
        post_shift_differing={
            m: statistics.fmean(r.post_shift_differing for r in rs) if rs else 0.0
            for m, rs in by_mode.items()
        },
        savings={m: _geomean([r.savings for r in rs]) for m, rs in by_mode.items()},
    )


def summary_dicts(summaries: Sequence[DriftSummary]) -> list[dict[str, Any]]:
    """JSON-ready rows."""
    return [asdict(s) for s in summaries]


def _geomean(values: Sequence[float]) -> float:
    positive = [v for v in values if v > 0]
    if not positive:
        return 0.0
    return math.exp(statistics.fmean(math.log(v) for v in positive))


def logged_shift_run(
    before: Sequence[ReplayItem],
    after: Sequence[ReplayItem],
    seed: int,
    *,
    reference: str,
    candidate: str,
    comparator: str,
    requests: int,
    epsilon: float,
    delta: float,
    audit_rate: float,
    detection: bool,
) -> DriftRun:
    """A shift in real logged answers: requests drawn (with replacement) from ``before`` until a
    random request, then from ``after`` (e.g. a new kind of question arriving), each answered
    by the models' logged outputs at their logged cost."""
    rng = random.Random(seed)
    shift_at = rng.randrange(requests // 4, 3 * requests // 4)
    stream = [rng.choice(before if x < shift_at else after) for x in range(requests)]
    config = SmartConfig(
        task="drift",
        epsilon=epsilon,
        delta=delta,
        # Logged costs price every call; a zero list price spares unknown models a price.
        reference=ModelSpec(name=reference, input_price=0.0, output_price=0.0),
        candidates=[ModelSpec(name=candidate, input_price=0.0, output_price=0.0)],
        comparator=comparator,
        expected_requests=requests,
        audit_rate=audit_rate,
        drift_detection=detection,
    )
    agree = config.comparator
    p_after = statistics.fmean(
        1.0 if agree(item.outputs[candidate], item.outputs[reference]) else 0.0 for item in after
    )

    def endpoint(model: str):
        async def call(x: int) -> Answer:
            logged = stream[x].outputs[model]
            return Answer(logged.text, logged.value, model, logged.usage, logged.cost)

        return call

    def agrees(x: int) -> bool:
        item = stream[x]
        return bool(agree(item.outputs[candidate], item.outputs[reference]))

    endpoints = {reference: endpoint(reference), candidate: endpoint(candidate)}
    return _serve(config, endpoints, seed, shift_at, requests, agrees, p_after)


def _serve(
    config: SmartConfig,
    endpoints: dict[str, Any],
    seed: int,
    shift_at: int,
    requests: int,
    agrees: Callable[[int], bool],
    after: float,
) -> DriftRun:
    """Serve requests ``0 .. requests - 1`` of one deployment and measure it (``agrees(x)``:
    does the candidate's answer to request ``x`` agree; ``after``: its agreement after the
    shift, which the mix in force at the end is judged by)."""
    candidate = config.candidates[0].name
    router = SmartRouter(config, endpoints, store=MemoryStore(), seed=seed, wait_for_probes=True)
    restarts: list[int] = []
    differing_after = 0

    async def serve() -> None:
        nonlocal differing_after
        epoch = 0.0
        for x in range(requests):
            routed = await router.arun(x)
            if x >= shift_at and routed.route == candidate and not agrees(x):
                differing_after += 1
            now = router.store.read(config.task).get(K.epoch(candidate), 0.0)
            if now > epoch:
                restarts.append(x)
                epoch = now

    asyncio.run(serve())
    ledger = router.ledger()
    end_agreement = sum(w * (after if r == candidate else 1.0) for r, w in ledger.mix.items())
    late = [x for x in restarts if x >= shift_at]
    return DriftRun(
        shift_at=shift_at,
        detection=config.drift_detection,
        detected_after=(late[0] - shift_at) if late else None,
        false_alarms=sum(1 for x in restarts if x < shift_at),
        end_agreement=end_agreement,
        post_shift_differing=differing_after / max(requests - shift_at, 1),
        savings=ledger.savings,
    )
