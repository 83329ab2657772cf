"""A run's state in its SQLite store file: the file beside the run's output holds one run.

Tables ``run_tickets``, ``run_answers`` and ``run_done`` sit next to the counters in the same
file. ``run_done`` has a column per chart field (older files lack ``differing_at_most``: it is
added on open, and reads as NULL for their rows). Each write is one statement in autocommit
mode, hence atomic; a finished item's ``seq`` is the next number in the same statement.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ._run_state import RunState, row_values

__all__ = ["SqliteRunState", "sqlite_timeline"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS run_tickets (item TEXT PRIMARY KEY, ticket TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS run_answers (item TEXT NOT NULL, model TEXT NOT NULL, "
    "answer TEXT NOT NULL, PRIMARY KEY (item, model))",
    "CREATE TABLE IF NOT EXISTS run_done (item TEXT PRIMARY KEY, idx INTEGER NOT NULL, "
    "seq INTEGER NOT NULL, line TEXT NOT NULL, route TEXT NOT NULL, probe INTEGER NOT NULL, "
    "cost REAL NOT NULL, ref_cost REAL, bound REAL NOT NULL, mix TEXT NOT NULL, "
    "effective_epsilon REAL NOT NULL)",
    # The next seq is MAX(seq) + 1 on every saved item: without an index that scan made a run's
    # time quadratic in its size.
    "CREATE INDEX IF NOT EXISTS run_done_seq ON run_done (seq)",
)
#: Columns added after the first release of the run table (NULL in older state files).
_ADDED_COLUMNS = {"differing_at_most": "REAL"}

_SAVE_DONE = (
    "INSERT OR IGNORE INTO run_done (item, idx, seq, line, route, probe, cost, ref_cost, "
    "bound, mix, effective_epsilon, differing_at_most) VALUES (?, ?, "
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM run_done), ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SqliteRunState(RunState):
    """The run tables of the SQLite file at ``path`` (one connection, used from one thread);
    ``run`` is the task the run's counters are kept under, which ``clear`` empties too."""

    def __init__(self, path: str | Path, run: str) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.run = run
        try:
            # Not bound to its thread: SQLite serialises the calls on a connection itself.
            self.conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self.conn.execute("PRAGMA busy_timeout = 30000")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA:
                self.conn.execute(statement)
            have = {row[1] for row in self.conn.execute("PRAGMA table_info(run_done)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in have:
                    self.conn.execute(f"ALTER TABLE run_done ADD COLUMN {column} {kind}")
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the run state in {self.path}: {exc}; check that it is a SMART "
                "state file on a local disk, or start over with --restart"
            ) from None

    def tickets(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT item, ticket FROM run_tickets"))

    def answers(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for item, model, a in self.conn.execute("SELECT item, model, answer FROM run_answers"):
            out.setdefault(item, {})[model] = a
        return out

    def done(self) -> dict[str, tuple[int, str]]:
        rows = self.conn.execute("SELECT item, idx, line FROM run_done")
        return {item: (idx, line) for item, idx, line in rows}

    def timeline(self) -> list[dict[str, Any]]:
        return _read_timeline(self.conn)

    def save_ticket(self, item: str, ticket: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO run_tickets VALUES (?, ?)", (item, ticket))

    def save_answer(self, item: str, model: str, answer: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO run_answers VALUES (?, ?, ?)", (item, model, answer)
        )

    def save_done(self, item: str, index: int, line: str, row: Mapping[str, Any]) -> bool:
        r = row_values(row)
        cur = self.conn.execute(
            _SAVE_DONE,
            (
                item,
                index,
                line,
                r["route"],
                int(bool(r["probe"])),
                r["cost"],
                r["ref_cost"],
                r["bound"],
                json.dumps(r["mix"]),
                r["effective_epsilon"],
                r["differing_at_most"],
            ),
        )
        return cur.rowcount == 1

    def clear(self) -> None:
        with self.conn:  # one transaction: a kill leaves the run whole or gone
            self.conn.execute("BEGIN IMMEDIATE")
            for table in ("run_tickets", "run_answers", "run_done"):
                self.conn.execute(f"DELETE FROM {table}")
            for table in ("counters", "events", "meta"):
                exists = self.conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
                ).fetchone()
                if exists:
                    self.conn.execute(f"DELETE FROM {table} WHERE task = ?", (self.run,))

    def close(self) -> None:
        self.conn.close()
        super().close()


def sqlite_timeline(path: str | Path) -> list[dict[str, Any]]:
    """Finished items of the run in the SQLite file at ``path``; [] if it holds no run."""
    if not Path(path).is_file():
        return []
    # A read-write connection, so that closing the last one checkpoints and removes the WAL.
    conn = sqlite3.connect(path)
    try:
        return _read_timeline(conn)
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def _read_timeline(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    have = {row[1] for row in conn.execute("PRAGMA table_info(run_done)")}
    if not have:
        return []
    added = ", ".join(c if c in have else "NULL" for c in _ADDED_COLUMNS)
    rows = conn.execute(
        "SELECT seq, idx, route, probe, cost, ref_cost, bound, mix, effective_epsilon, "
        f"{added} FROM run_done ORDER BY seq"
    ).fetchall()
    return [
        {
            "seq": r[0],
            "index": r[1],
            "route": r[2],
            "probe": bool(r[3]),
            "cost": r[4],
            "ref_cost": r[5],
            "bound": r[6],
            "mix": json.loads(r[7]),
            "effective_epsilon": r[8],
            "differing_at_most": r[9],
        }
        for r in rows
    ]
