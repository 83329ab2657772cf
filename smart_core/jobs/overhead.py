"""``smart bench overhead``: how long the engine's per-request decision takes.

Measures what SMART adds to every request besides the model calls: reading the task's counters,
deriving the policy, drawing the route and reserving it in the store. The models are instant
endpoints, so everything measured is SMART's own work.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..engine.router import SmartRouter
from ..stores import open_store
from ..task.answer import Answer
from ..task.config import SmartConfig
from ..task.usage import Usage

__all__ = ["OverheadResult", "measure_overhead"]


@dataclass(frozen=True)
class OverheadResult:
    """Per-request timings in microseconds for one store backend."""

    store: str
    requests: int
    decide_median_us: float
    decide_p99_us: float
    request_median_us: float
    request_p99_us: float

    def to_dict(self) -> dict:
        return asdict(self)


def _config(store: str) -> SmartConfig:
    return SmartConfig(
        task="overhead",
        epsilon=0.05,
        reference="gpt-4o",
        candidates=["gpt-4o-mini", "claude-3-5-haiku"],
        store=store,
        comparator="choice:A,B,C,D",
    )


def _endpoints() -> dict:
    def make(text: str):
        async def call(_request: object) -> Answer:
            return Answer(text=text, usage=Usage(400, 2))

        return call

    return {"gpt-4o": make("A"), "gpt-4o-mini": make("A"), "claude-3-5-haiku": make("A")}


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure_overhead(store: str = "memory://", *, requests: int = 5000) -> OverheadResult:
    """Serve ``requests`` requests (after a warm-up that ends profiling) and time each step."""
    with tempfile.TemporaryDirectory() as tmp:
        url = store.replace("{tmp}", str(Path(tmp)))
        router = SmartRouter(
            _config(url), _endpoints(), store=open_store(url), seed=0, wait_for_probes=True
        )
        decide_t: list[float] = []
        request_t: list[float] = []
        decide = router.adecide

        async def timed_decide(*args, **kwargs):
            # The decision of a request actually served: a decision taken and never served
            # would leave its probes open (counted as differing) and time a policy that real
            # traffic never sees.
            t0 = time.perf_counter()
            decision = await decide(*args, **kwargs)
            decide_t.append((time.perf_counter() - t0) * 1e6)
            return decision

        async def run() -> None:
            for _ in range(2000):  # warm-up: profiling finishes, the mix settles
                await router.arun(None)
            router.adecide = timed_decide  # type: ignore[method-assign]
            for _ in range(requests):
                t0 = time.perf_counter()
                await router.arun(None)
                request_t.append((time.perf_counter() - t0) * 1e6)

        asyncio.run(run())
        router.close()
    return OverheadResult(
        store=store.split(":", 1)[0],
        requests=requests,
        decide_median_us=statistics.median(decide_t),
        decide_p99_us=_percentile(decide_t, 0.99),
        request_median_us=statistics.median(request_t),
        request_p99_us=_percentile(request_t, 0.99),
    )
