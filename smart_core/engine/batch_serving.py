"""Serving a whole batch in an order SMART draws itself (:meth:`SmartRouter.arun_batch`).

Batch mode's guarantee needs the probed items to be a uniform sample of the items not yet
probed, so the order in which items are decided must be random and blind to their content.
Given the whole batch, this draws that order with the router's seeded generator and serves the
items with bounded concurrency; asyncio's semaphore wakes waiters first in, first out, so the
items are decided in the drawn order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..policy import keys as K

if TYPE_CHECKING:
    from .router import SmartRouter

__all__ = ["serve_batch"]


async def serve_batch(
    router: SmartRouter,
    requests: Sequence[Any],
    *,
    task: str | None,
    concurrency: int,
    return_exceptions: bool,
) -> list[Any]:
    """See :meth:`SmartRouter.arun_batch`."""
    name = task or router.config.task
    await _check_batch(router, name, len(requests))
    order = list(range(len(requests)))
    router.rng.shuffle(order)
    gate = asyncio.Semaphore(max(1, concurrency))
    results: list[Any] = [None] * len(requests)

    async def one(i: int) -> None:
        async with gate:  # waiters wake in FIFO order: items are decided in the drawn order
            try:
                results[i] = await router.arun(requests[i], task=task)
            except Exception as exc:
                if not return_exceptions:
                    raise
                results[i] = exc

    previous, router.wait_for_probes = router.wait_for_probes, True
    try:
        with router.shuffled_batch():
            tasks = [asyncio.ensure_future(one(i)) for i in order]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        await router.aflush()
    finally:
        router.wait_for_probes = previous
    return results


async def _check_batch(router: SmartRouter, task: str, size: int) -> None:
    n = router.config.batch_size
    if n is None:
        return
    if size != n:
        raise ValueError(
            f"arun_batch: got {size} requests for task {task!r} whose batch_size is {n}; "
            "pass the whole batch at once (the guarantee is over its N answers) or set "
            "batch_size to the number of requests"
        )
    if (await router.store.aread(task)).get(K.REQUESTS, 0.0) > 0:
        raise ValueError(
            f"arun_batch: task {task!r} has already served requests in this store; a batch "
            "is served once, from its first item: use a new task name or a new store (for a "
            "resumable file run, use `smart run`)"
        )
