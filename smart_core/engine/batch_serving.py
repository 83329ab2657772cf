"""Serving a whole batch in an order SMART draws itself (:meth:`SmartRouter.arun_batch`).

Batch mode's guarantee needs the probed items to be a uniform sample of the items not yet
probed, so the order in which items are decided must be random and blind to their content.
Given the whole batch, this draws that order with the router's seeded generator and serves the
items with bounded concurrency; asyncio's semaphore wakes waiters first in, first out, so the
items are decided in the drawn order.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..policy import keys as K

if TYPE_CHECKING:
    from .router import SmartRouter

__all__ = ["CALLER_ORDER_WARNING", "BatchServing", "no_running_loop", "serve_batch"]

#: Set while requests are begun in an order drawn at random, blind to their content
#: (:meth:`SmartRouter.shuffled_batch`): batch mode's guarantee needs exactly that.
_SHUFFLED: contextvars.ContextVar[bool] = contextvars.ContextVar("smart_shuffled", default=False)

CALLER_ORDER_WARNING = (
    "task {task!r} is in batch mode (batch_size={n}) and its requests are served one at a time in "
    "the order you pass them. The batch guarantee assumes that order is random: items sorted by "
    "date, source or length can break it. Pass the whole batch to router.arun_batch(items) / "
    "run_batch(items) (or the adapters' .batch()/.abatch()), which draw the order themselves, or "
    "shuffle the items and begin them inside `with router.shuffled_batch():`."
)


class BatchServing:
    """The batch methods of :class:`~smart_core.SmartRouter` (a mixin: they need its config,
    generator, store, ``arun`` and ``_warn_once``)."""

    async def arun_batch(
        self,
        requests: Sequence[Any],
        *,
        task: str | None = None,
        concurrency: int = 8,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Serve a whole batch in an order drawn at random; results come back in input order.

        Batch mode's guarantee (``batch_size=N``) needs the probed items to be a uniform sample
        of the items not yet probed, so the order in which items are decided must be random and
        blind to their content: this draws it with the router's seeded generator. In batch mode
        ``requests`` must be the task's whole batch (``len(requests) == batch_size``, none of it
        served yet). Probes are recorded before the batch returns. With ``return_exceptions``
        an item whose reference fails gets its exception in its place instead of raising.
        """
        return await serve_batch(
            self, requests, task=task, concurrency=concurrency, return_exceptions=return_exceptions
        )

    def run_batch(
        self,
        requests: Sequence[Any],
        *,
        task: str | None = None,
        concurrency: int = 8,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Synchronous twin of :meth:`arun_batch`; not for use in a running loop."""
        no_running_loop("run_batch", "arun_batch")
        return asyncio.run(
            self.arun_batch(
                requests, task=task, concurrency=concurrency, return_exceptions=return_exceptions
            )
        )

    @contextlib.contextmanager
    def shuffled_batch(self) -> Iterator[None]:
        """Declare that the requests begun inside (in this context, its tasks and copies) come
        in an order drawn at random, blind to their content, as batch mode needs. Used by
        :meth:`arun_batch` and the adapters' ``batch()``; without it, batch mode warns once."""
        token = _SHUFFLED.set(True)
        try:
            yield
        finally:
            _SHUFFLED.reset(token)

    def _check_order(self, task: str | None) -> None:
        if self.config.batch_size is None or _SHUFFLED.get():
            return
        name = task or self.config.task
        self._warn_once(
            name, "order", CALLER_ORDER_WARNING.format(task=name, n=self.config.batch_size)
        )


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


def no_running_loop(method: str, twin: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"SmartRouter.{method}() was called inside a running event loop; "
        f"use `await router.{twin}(...)` there"
    )
