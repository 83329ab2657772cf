"""``smart bench inflight``: what requests in flight cost in probes, with and without ordered
decisions.

A probe counts as differing from its decision until its answers are compared, so the more
requests are in flight the more probes a bound needs. A router whose store runs its async calls
inline orders its decisions and also reads the probes settled in that order
(:mod:`smart_core.engine.decision_order`); on Redis and PostgreSQL decisions go unordered. This
serves the same requests both ways at several levels of concurrency (the unordered runs use a
memory store that declares its async calls non-inline, so that the store is the only
difference) and prints probes, the share routed to the candidate, savings and the realized
disagreement.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass

from ..engine.router import SmartRouter
from ..policy import keys as K
from ..stores import MemoryStore
from ..task.answer import Answer
from ..task.config import SmartConfig
from ..task.usage import Usage

__all__ = ["InflightPoint", "serve_in_flight"]

REFERENCE, CANDIDATE = "gpt-4o", "gpt-4o-mini"
_USAGE = Usage(1000, 100)


@dataclass(frozen=True)
class InflightPoint:
    mode: str
    in_flight: int
    ordered: bool
    requests: int
    probes: int
    routed_share: float
    savings: float
    disagreement: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class _UnorderedMemoryStore(MemoryStore):
    """A memory store whose router decides unordered, as on Redis or PostgreSQL."""

    async_inline = False


def serve_in_flight(
    mode: str,
    in_flight: int,
    *,
    ordered: bool,
    requests: int = 2_000,
    agreement: float = 0.97,
    epsilon: float = 0.05,
    latency_ms: float = 20.0,
    seed: int = 0,
) -> InflightPoint:
    """Serve ``requests`` through one router with ``in_flight`` at a time (``mode``: online,
    or batch over the requests); the reference answers after a random pause of up to twice
    ``latency_ms`` (differing answers take twice as long), the candidate agrees on a share
    ``agreement`` of them and costs a tenth of the reference."""
    return asyncio.run(
        _serve(mode, in_flight, ordered, requests, agreement, epsilon, latency_ms, seed)
    )


async def _serve(
    mode: str,
    in_flight: int,
    ordered: bool,
    requests: int,
    agreement: float,
    epsilon: float,
    latency_ms: float,
    seed: int,
) -> InflightPoint:
    if mode not in ("online", "batch"):
        raise ValueError(f"mode must be 'online' or 'batch', got {mode!r}")
    rng = random.Random(seed)
    agrees = [rng.random() < agreement for _ in range(requests)]
    pauses = [rng.uniform(0.0, 2.0 * latency_ms) / 1e3 for _ in range(requests)]

    async def reference(i: int) -> Answer:
        await asyncio.sleep(pauses[i] * (1.0 if agrees[i] else 2.0))
        return Answer(text=f"answer-{i}", usage=_USAGE, cost=0.01)

    async def candidate(i: int) -> Answer:
        text = f"answer-{i}" if agrees[i] else f"other-{i}"
        return Answer(text=text, usage=_USAGE, cost=0.001)

    size = {"batch_size": requests} if mode == "batch" else {"expected_requests": requests}
    config = SmartConfig(
        task="inflight", epsilon=epsilon, reference=REFERENCE, candidates=[CANDIDATE], **size
    )
    store = MemoryStore() if ordered else _UnorderedMemoryStore()
    endpoints = {REFERENCE: reference, CANDIDATE: candidate}
    router = SmartRouter(config, endpoints, store=store, seed=seed)
    served: list = [None] * requests
    if mode == "batch":
        results = await router.arun_batch(list(range(requests)), concurrency=in_flight)
        served = list(results)
    else:
        gate = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with gate:
                served[i] = await router.arun(i)

        await asyncio.gather(*(one(i) for i in range(requests)))
    await router.aflush()
    counters = store.read("inflight")
    spent = router.ledger().spent
    await router.aclose()
    to_candidate = [i for i, r in enumerate(served) if r.route == CANDIDATE]
    return InflightPoint(
        mode=mode,
        in_flight=in_flight,
        ordered=ordered,
        requests=requests,
        probes=int(counters.get(K.PROBES, 0.0)),
        routed_share=len(to_candidate) / requests,
        savings=0.01 * requests / spent if spent > 0 else float("inf"),
        disagreement=sum(not agrees[i] for i in to_candidate) / requests,
    )
