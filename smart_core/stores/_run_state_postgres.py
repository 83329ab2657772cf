"""A run's state in the database of its ``PostgresStore``, in rows keyed by the run's name.

Tables (created on first use, beside the store's ``smart_*`` tables): ``smart_run_tickets(run,
item, ticket)``, ``smart_run_answers(run, item, model, answer)`` and ``smart_run_done(run, item,
idx, seq, line, row)``, where ``row`` is the chart row as JSON and ``seq`` a sequence number that
orders finished items (numbered 1, 2, ... per run when read back). The run's counters are the
store's task ``<run>``.

Atomicity. Each write is one statement: a ticket is upserted, an answer and a finished item are
``INSERT ... ON CONFLICT DO NOTHING`` (the first one wins; ``save_done`` reports whether it was
the one), so an item is finished once, whole. ``clear`` deletes the run's rows and its task's
counters, event ids and metadata in one transaction. Calls go through the store's pool, retries
and error messages (which never show the URL's password).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import StoreError
from ._postgres import PostgresStore, _describe
from ._run_state import ThreadedRunState, row_values

__all__ = ["PostgresRunState"]

# Serialises table creation between processes opening a new database at the same moment.
_SCHEMA_LOCK = 0x534D52554E  # "SMRUN"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS smart_run_tickets (
        run text NOT NULL, item text NOT NULL, ticket text NOT NULL, PRIMARY KEY (run, item))""",
    """CREATE TABLE IF NOT EXISTS smart_run_answers (
        run text NOT NULL, item text NOT NULL, model text NOT NULL, answer text NOT NULL,
        PRIMARY KEY (run, item, model))""",
    """CREATE TABLE IF NOT EXISTS smart_run_done (
        run text NOT NULL, item text NOT NULL, idx bigint NOT NULL, seq bigserial,
        line text NOT NULL, row text NOT NULL, PRIMARY KEY (run, item))""",
)

_SAVE_TICKET = (
    "INSERT INTO smart_run_tickets (run, item, ticket) VALUES (%s, %s, %s) "
    "ON CONFLICT (run, item) DO UPDATE SET ticket = EXCLUDED.ticket"
)
_SAVE_ANSWER = (
    "INSERT INTO smart_run_answers (run, item, model, answer) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
_SAVE_DONE = (
    "INSERT INTO smart_run_done (run, item, idx, line, row) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING RETURNING 1"
)
_CLEAR = (
    "DELETE FROM smart_run_tickets WHERE run = %(run)s",
    "DELETE FROM smart_run_answers WHERE run = %(run)s",
    "DELETE FROM smart_run_done WHERE run = %(run)s",
    "DELETE FROM smart_counters WHERE task = %(run)s",
    "DELETE FROM smart_events WHERE task = %(run)s",
    "DELETE FROM smart_meta WHERE task = %(run)s",
)


class PostgresRunState(ThreadedRunState):
    """Run ``run``'s state in ``store``'s database (the store stays open after ``close``)."""

    def __init__(self, store: PostgresStore, run: str) -> None:
        self.store = store
        self.run = run
        self.where = f"{store.url} (run {run})"
        self._init_schema()

    def _init_schema(self) -> None:
        def work(conn: Any) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)

        try:
            self.store._call(work)
        except StoreError as exc:
            raise StoreError(
                f"cannot make the run tables (smart_run_*) in {self.store.url}: {exc} "
                "(the user needs CREATE on the database the first time)"
            ) from None

    def _rows(self, sql: str) -> list[Any]:
        return self.store._call(lambda conn: conn.execute(sql, (self.run,)).fetchall())

    def tickets(self) -> dict[str, str]:
        return dict(self._rows("SELECT item, ticket FROM smart_run_tickets WHERE run = %s"))

    def answers(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for item, model, answer in self._rows(
            "SELECT item, model, answer FROM smart_run_answers WHERE run = %s"
        ):
            out.setdefault(item, {})[model] = answer
        return out

    def done(self) -> dict[str, tuple[int, str]]:
        rows = self._rows("SELECT item, idx, line FROM smart_run_done WHERE run = %s")
        return {item: (int(idx), line) for item, idx, line in rows}

    def timeline(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT idx, row FROM smart_run_done WHERE run = %s ORDER BY seq")
        return [
            {"seq": n, "index": int(idx), **row_values(json.loads(row))}
            for n, (idx, row) in enumerate(rows, start=1)
        ]

    def save_ticket(self, item: str, ticket: str) -> None:
        self.store._call(lambda conn: conn.execute(_SAVE_TICKET, (self.run, item, ticket)))

    def save_answer(self, item: str, model: str, answer: str) -> None:
        self.store._call(lambda conn: conn.execute(_SAVE_ANSWER, (self.run, item, model, answer)))

    def save_done(self, item: str, index: int, line: str, row: Mapping[str, Any]) -> bool:
        payload = json.dumps(row_values(row), default=str)
        params = (self.run, item, index, line, payload)
        row_written = self.store._call(lambda conn: conn.execute(_SAVE_DONE, params).fetchone())
        return row_written is not None

    def clear(self) -> None:
        def work(conn: Any) -> None:
            with conn.transaction():
                for statement in _CLEAR:
                    conn.execute(statement, {"run": self.run})

        try:
            self.store._call(work)
        except StoreError as exc:
            raise StoreError(f"could not clear run {self.run}: {_describe(exc)}") from None
