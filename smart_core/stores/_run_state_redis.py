"""A run's state in the Redis server of its ``RedisStore``, under keys named after the run.

Layout, under the store's prefix (``smart:``) and ``run:<run>:``: a hash ``tickets`` (item ->
ticket), a hash ``answers`` (the JSON pair ``[item, model]`` -> answer), a hash ``done`` (item ->
``<seq>|<JSON of index, line and chart row>``) and a counter ``seq``. The run's counters are the
store's task ``<run>``.

Atomicity. ``save_done`` is one Lua script: it returns 0 if the item is already finished, else
takes the next ``seq`` and writes the item, so an item is finished once, whole. ``clear`` deletes
the run's keys and its task's counters, metadata and event ids in one MULTI/EXEC. Every call
goes through the store's retries (each write is idempotent, so a reply lost with a dropped
connection is safely re-sent) and its error messages, which never show the URL's password.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._redis import RedisStore
from ._run_state import ThreadedRunState, row_values

__all__ = ["RedisRunState"]

# KEYS: done hash, seq counter. ARGV: item, payload (JSON without seq).
_SAVE_DONE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], tostring(seq) .. '|' .. ARGV[2])
return 1
"""


class RedisRunState(ThreadedRunState):
    """Run ``run``'s state in ``store``'s server (the store stays open after ``close``)."""

    def __init__(self, store: RedisStore, run: str) -> None:
        self.store = store
        self.run = run
        self.where = f"{store.url} (run {run})"
        base = f"{store._prefix}run:{run}:"
        self._tickets, self._answers = base + "tickets", base + "answers"
        self._done, self._seq = base + "done", base + "seq"
        self._script = store._client.register_script(_SAVE_DONE)

    def tickets(self) -> dict[str, str]:
        return self.store._call(lambda: self.store._client.hgetall(self._tickets))

    def answers(self) -> dict[str, dict[str, str]]:
        raw = self.store._call(lambda: self.store._client.hgetall(self._answers))
        out: dict[str, dict[str, str]] = {}
        for key, answer in raw.items():
            item, model = json.loads(key)
            out.setdefault(item, {})[model] = answer
        return out

    def _done_rows(self) -> list[tuple[int, str, dict[str, Any]]]:
        raw = self.store._call(lambda: self.store._client.hgetall(self._done))
        rows = []
        for item, value in raw.items():
            seq, _, payload = value.partition("|")
            rows.append((int(seq), item, json.loads(payload)))
        rows.sort(key=lambda r: r[0])
        return rows

    def done(self) -> dict[str, tuple[int, str]]:
        return {item: (p["index"], p["line"]) for _, item, p in self._done_rows()}

    def timeline(self) -> list[dict[str, Any]]:
        return [
            {"seq": n, "index": p["index"], **row_values(p["row"])}
            for n, (_, _, p) in enumerate(self._done_rows(), start=1)
        ]

    def save_ticket(self, item: str, ticket: str) -> None:
        self.store._call(lambda: self.store._client.hset(self._tickets, item, ticket))

    def save_answer(self, item: str, model: str, answer: str) -> None:
        key = json.dumps([item, model])
        self.store._call(lambda: self.store._client.hsetnx(self._answers, key, answer))

    def save_done(self, item: str, index: int, line: str, row: Mapping[str, Any]) -> bool:
        payload = json.dumps({"index": index, "line": line, "row": row_values(row)}, default=str)
        keys = [self._done, self._seq]
        return bool(self.store._call(lambda: self._script(keys=keys, args=[item, payload])))

    def clear(self) -> None:
        store = self.store

        def work() -> None:
            pipe = store._client.pipeline(transaction=True)
            pipe.delete(
                self._tickets,
                self._answers,
                self._done,
                self._seq,
                store._counters_key(self.run),
                store._meta_key(self.run),
                store._events_key(self.run),
            )
            pipe.srem(store._tasks_key(), self.run)
            pipe.execute()

        store._call(work)
