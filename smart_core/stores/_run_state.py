"""A batch run's own state (``smart run``), kept beside its counters so a run resumes after a crash.

The counters say what the policy has seen; a run also needs, per item, the routing ticket it
drew, every model answer that came back (so a resumed run never pays for it again) and, once the
item is finished, its output line and the row the run's chart is drawn from. Each backend keeps
these in the same place as the store that holds the run's counters:

* SQLite: tables in the store's file (one run per file, the file beside the run's output);
* Redis and PostgreSQL: keys / rows named after the run, so several runs share one server without
  mixing, and ``clear`` (``smart run --restart``) removes only its own run, counters included.

The state is strings: tickets and answers arrive already serialised (the jobs layer knows what a
ticket is; stores do not), and a finished item is its output line plus its chart row.

Crash safety. ``save_done`` writes an item's line and row in one atomic step and refuses a second
write of the same item, so a kill leaves each item either finished (exactly once) or not at all;
``save_ticket`` and ``save_answer`` are single idempotent writes.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from ..errors import StoreError
from ._base import Store
from ._memory import MemoryStore
from ._sqlite import SqliteStore
from ._url import open_store

__all__ = ["DONE_FIELDS", "RunState", "open_run_state"]

_T = TypeVar("_T")

#: The chart row of a finished item, as ``save_done`` takes it and ``timeline`` gives it back
#: (with ``seq``, the item's place in completion order from 1, and ``index``, its input line).
DONE_FIELDS = (
    "route",
    "probe",
    "cost",
    "ref_cost",
    "bound",
    "mix",
    "effective_epsilon",
    "differing_at_most",
)


class RunState(ABC):
    """One run's tickets, answers and finished items. Reads are for start-up and the end of a
    run; writes happen while items are served (their async twins keep the event loop free on a
    network backend)."""

    #: Where the state lives, for messages (a URL's password is never in it).
    where: str

    @abstractmethod
    def tickets(self) -> dict[str, str]:
        """Each started item's serialised ticket, by item id."""

    @abstractmethod
    def answers(self) -> dict[str, dict[str, str]]:
        """Every saved model answer: item id -> model -> serialised answer."""

    @abstractmethod
    def done(self) -> dict[str, tuple[int, str]]:
        """Each finished item's ``(input index, output line)``, by item id."""

    @abstractmethod
    def timeline(self) -> list[dict[str, Any]]:
        """Finished items' chart rows in completion order (``seq`` 1, 2, ...)."""

    @abstractmethod
    def save_ticket(self, item: str, ticket: str) -> None:
        """Save (or replace: a fallback changes the route) the item's ticket."""

    @abstractmethod
    def save_answer(self, item: str, model: str, answer: str) -> None:
        """Save a model's answer to the item; the first one saved is kept."""

    @abstractmethod
    def save_done(self, item: str, index: int, line: str, row: Mapping[str, Any]) -> bool:
        """Finish the item, atomically; False (and nothing written) if it was finished before."""

    @abstractmethod
    def clear(self) -> None:
        """Forget this run: its tickets, answers, finished items and its counters."""

    def close(self) -> None:
        """Release what this object opened (a store it was given stays open)."""
        owned = getattr(self, "_owned_store", None)
        if owned is not None:
            owned.close()

    async def asave_ticket(self, item: str, ticket: str) -> None:
        self.save_ticket(item, ticket)

    async def asave_answer(self, item: str, model: str, answer: str) -> None:
        self.save_answer(item, model, answer)

    async def asave_done(self, item: str, index: int, line: str, row: Mapping[str, Any]) -> bool:
        return self.save_done(item, index, line, row)


class ThreadedRunState(RunState, ABC):
    """A network backend: its blocking client calls run in a worker thread, so that a run with
    many items in flight waits on the server concurrently rather than one call at a time.

    A write that has started is waited for even if the caller is cancelled (Ctrl-C, a fatal
    error stopping the run): the thread would finish it anyway, and the run, which reads its
    state back as it stops, must see it rather than race it or close the store under it."""

    async def asave_ticket(self, item: str, ticket: str) -> None:
        await _finish(asyncio.to_thread(self.save_ticket, item, ticket))

    async def asave_answer(self, item: str, model: str, answer: str) -> None:
        await _finish(asyncio.to_thread(self.save_answer, item, model, answer))

    async def asave_done(self, item: str, index: int, line: str, row: Mapping[str, Any]) -> bool:
        return await _finish(asyncio.to_thread(self.save_done, item, index, line, row))


async def _finish(work: Coroutine[Any, Any, _T]) -> _T:
    """Await ``work`` to its end even if cancelled meanwhile (once or again: a stopping run
    cancels its items more than once); then let the cancellation on."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            pass
    if cancelled:
        raise asyncio.CancelledError
    return task.result()


def open_run_state(store: Store | str, run: str) -> RunState:
    """The state of run ``run`` (also the task its counters are kept under) in ``store``: an open
    store (shared, not closed by the run state) or a store URL (opened and closed with it)."""
    owned = isinstance(store, str)
    opened = open_store(store)
    try:
        state = _backend(opened, run)
    except BaseException:
        if owned:
            opened.close()
        raise
    if owned:
        state._owned_store = opened  # type: ignore[attr-defined]
    return state


def _backend(store: Store, run: str) -> RunState:
    if isinstance(store, SqliteStore):
        from ._run_state_sqlite import SqliteRunState

        return SqliteRunState(store.path, run)
    if isinstance(store, MemoryStore):
        raise StoreError(
            "memory:// keeps nothing after the process ends, so a run could not resume; "
            "use sqlite:///path.db, redis://host:6379/0 or postgresql://user@host/db"
        )
    kind = type(store).__name__
    if kind == "RedisStore":
        from ._run_state_redis import RedisRunState

        return RedisRunState(store, run)  # type: ignore[arg-type]
    if kind == "PostgresStore":
        from ._run_state_postgres import PostgresRunState

        return PostgresRunState(store, run)  # type: ignore[arg-type]
    raise StoreError(
        f"{store.url}: {kind} cannot hold a run's state; use sqlite:///path.db, "
        "redis://host:6379/0 or postgresql://user@host/db"
    )


def row_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """The chart row's fields, each present (``differing_at_most`` may be missing: None)."""
    return {name: row.get(name) for name in DONE_FIELDS}
