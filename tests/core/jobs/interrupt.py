"""Stopping a run from inside, as Ctrl-C does: ``asyncio.run`` cancels its main task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


class Interrupt:
    """Runs a job's coroutine as the main task; :meth:`stop` (from an endpoint's hook, say)
    cancels it mid-flight, with whatever items are in flight then."""

    def __init__(self) -> None:
        self._task: asyncio.Task | None = None

    def stop(self) -> None:
        assert self._task is not None, "stop() before run()"
        self._task.cancel()

    def run(self, start: Callable[[], Awaitable[Any]]) -> None:
        """Run ``start()`` until it is stopped; fails if it finishes instead."""

        async def main() -> None:
            self._task = asyncio.ensure_future(start())
            await self._task

        with pytest.raises(asyncio.CancelledError):
            asyncio.run(main())
