"""An event loop on a thread of its own, for async clients that must outlive their callers' loops.

psycopg's ``AsyncConnectionPool`` runs background tasks (a scheduler and workers) on the loop that
opened it. Callers such as ``asyncio.run`` per request create and close a loop for every call;
closing a loop cancels those tasks mid-work, which can leave the loop waiting for them for ever.
Hosting the pool on one long-lived loop avoids that: callers await a future for the work, which
keeps them non-blocking, and the pool is closed deliberately, by the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

_T = TypeVar("_T")


class LoopThread:
    """A daemon thread running an event loop until ``stop``; ``run`` hands it coroutines."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coro`` run on this loop from another loop (cancelling the wait cancels it)."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and wait for the thread; pending work is abandoned. Idempotent."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
