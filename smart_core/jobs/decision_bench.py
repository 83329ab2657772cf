"""``smart bench decisions``: how a decision's cost grows with candidates and evidence.

Times :meth:`Policy.decide <smart_core.policy.Policy.decide>` alone (no store), on counters as
a task has them after ``probes`` probes: ``candidates`` cheap candidates agreeing with the
reference at rates spread between 0.90 and 0.99, in online mode (``expected_requests``) and in
batch mode (a batch four times the probes; with six candidates or more a screened batch past
its screening, as :func:`~smart_core.policy.policy_for` builds it). Each decision counts one
more request, so the policy's caches see what they see in serving; the first decisions, which
fill them, are timed too.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..policy import Policy, policy_for
from ..policy import keys as K
from ..task.config import ModelSpec, SmartConfig

__all__ = ["DecisionTiming", "time_decisions"]

_REF = "reference"


@dataclass(frozen=True, slots=True)
class DecisionTiming:
    """Microseconds per decision for one (mode, candidates, probes) point."""

    mode: str
    candidates: int
    probes: int
    median_us: float
    p90_us: float
    mean_us: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _setup(mode: str, candidates: int, probes: int) -> tuple[Policy, dict[str, float]]:
    names = [f"candidate-{i}" for i in range(candidates)]
    specs = [
        ModelSpec(name=n, input_price=0.1 + 0.05 * i, output_price=0.4 + 0.2 * i)
        for i, n in enumerate(names)
    ]
    settings: dict[str, Any] = {
        "task": "bench",
        "epsilon": 0.05,
        "reference": ModelSpec(name=_REF, input_price=2.5, output_price=10.0),
        "candidates": specs,
    }
    if mode == "batch":
        settings["batch_size"] = 4 * probes
    else:
        settings["expected_requests"] = 100 * probes
    policy = policy_for(SmartConfig(**settings))
    counters: dict[str, float] = {
        K.REQUESTS: float(2 * probes),
        K.PROBES: float(probes),
        K.routed(_REF): float(probes),
        K.calls(_REF): float(probes),
        K.call_cost(_REF): probes * 0.004,
    }
    # A screened batch (six candidates or more) is past its screening: its first requests
    # screened every candidate, the rest of the probes are certification probes.
    screened = min(getattr(policy, "screen", 0), probes // 2)
    if screened:
        counters[K.SCREENED] = float(screened)
        counters[K.screen_calls(_REF)] = float(screened)
        counters[K.screen_cost(_REF)] = screened * 0.004
    for i, name in enumerate(names):
        rate = 0.90 + 0.09 * i / max(candidates - 1, 1)
        counters[K.probes_of(name)] = float(probes)
        counters[K.agreements(name)] = float(round(rate * probes))
        counters[K.calls(name)] = float(probes)
        counters[K.call_cost(name)] = probes * 0.0002 * (1 + i)
        if screened:
            counters[K.screen_calls(name)] = float(screened)
            counters[K.screen_cost(name)] = screened * 0.0002 * (1 + i)
            counters[K.cert_probes(name)] = float(probes - screened)
            counters[K.cert_agreements(name)] = float(round(rate * (probes - screened)))
    return policy, counters


def time_decisions(
    mode: str, candidates: int, probes: int, *, decisions: int = 200, seed: int = 0
) -> DecisionTiming:
    """Time ``decisions`` consecutive decisions at one point (see the module docstring)."""
    if mode not in ("online", "batch"):
        raise ValueError(f"mode must be 'online' or 'batch', got {mode!r}")
    policy, counters = _setup(mode, candidates, probes)
    rng = random.Random(seed)
    times = []
    for _ in range(decisions):
        t0 = time.perf_counter()
        decision = policy.decide(counters, rng)
        times.append((time.perf_counter() - t0) * 1e6)
        for key, value in decision.increments.items():
            counters[key] = counters.get(key, 0.0) + value
    times.sort()
    return DecisionTiming(
        mode=mode,
        candidates=candidates,
        probes=probes,
        median_us=statistics.median(times),
        p90_us=times[int(0.9 * (len(times) - 1))],
        mean_us=statistics.fmean(times),
    )
