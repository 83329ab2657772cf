"""The run-state contract (``smart run``'s tickets, answers and finished items) on SQLite, Redis
and PostgreSQL: what one process saves another restores, an item is finished once and whole even
when writers race, ``clear`` forgets one run with its counters and nothing else, and runs sharing
a server never see each other's items."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smart_core.errors import StoreError
from smart_core.stores import RunState, SqliteStore, Store, open_run_state, open_store

KINDS = ["sqlite", "redis", "postgres"]
SHARED = ["redis", "postgres"]


def _row(route: str, cost: float = 0.01, **extra) -> dict:
    return {
        "route": route,
        "probe": False,
        "cost": cost,
        "ref_cost": None,
        "bound": 0.9,
        "mix": {route: 1.0},
        "effective_epsilon": 0.05,
        "differing_at_most": 2.5,
        **extra,
    }


def empty_run_tables(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS smart_run_tickets, smart_run_answers, smart_run_done")


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """``store_url(kind)``: the URL of this test's (emptied) store of that kind."""
    emptied: dict[str, str] = {}

    def url(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / 'run.smart.db'}"
        if kind not in emptied:
            emptied[kind] = str(request.getfixturevalue(f"{kind}_url"))
            if kind == "postgres":  # the session's database keeps other tests' run tables
                empty_run_tables(emptied[kind])
        return emptied[kind]

    return url


@pytest.fixture
def opener(store_url: Callable[[str], str]) -> Iterator[Callable[[str, str], RunState]]:
    """``opener(kind, run)``: a run state on a store of its own (as another process would)."""
    opened: list[RunState] = []

    def run_state(kind: str, run: str = "run/abc") -> RunState:
        state = open_run_state(store_url(kind), run)
        opened.append(state)
        return state

    yield run_state
    for state in opened:
        state.close()


@pytest.mark.parametrize("kind", KINDS)
def test_what_one_process_saves_another_restores(kind, opener):
    first = opener(kind)
    first.save_ticket("a", '{"t": 1}')
    first.save_ticket("b", '{"t": 2}')
    first.save_ticket("a", '{"t": 3}')  # a fallback replaces the ticket
    first.save_answer("a", "gpt-4o", "A1")
    first.save_answer("a", "gpt-4o", "A2")  # the first answer saved is kept
    first.save_answer("a", "mini", "M1")
    first.save_answer("b", "mini", "M2")
    assert first.save_done("b", 1, '{"id": "b"}', _row("mini"))
    assert first.save_done("a", 0, '{"id": "a"}', _row("gpt-4o", ref_cost=0.02, probe=True))
    assert not first.save_done("a", 0, '{"id": "other"}', _row("mini"))
    first.close()

    again = opener(kind)
    assert again.tickets() == {"a": '{"t": 3}', "b": '{"t": 2}'}
    assert again.answers() == {"a": {"gpt-4o": "A1", "mini": "M1"}, "b": {"mini": "M2"}}
    assert again.done() == {"a": (0, '{"id": "a"}'), "b": (1, '{"id": "b"}')}
    rows = again.timeline()
    assert [(r["seq"], r["index"], r["route"]) for r in rows] == [(1, 1, "mini"), (2, 0, "gpt-4o")]
    assert rows[1]["probe"] is True and rows[1]["ref_cost"] == 0.02
    assert rows[0]["mix"] == {"mini": 1.0} and rows[0]["differing_at_most"] == 2.5


@pytest.mark.parametrize("kind", KINDS)
def test_async_writes_are_the_same_writes(kind, opener):
    state = opener(kind)

    async def main() -> list[bool]:
        await state.asave_ticket("a", "T")
        await state.asave_answer("a", "m", "A")
        return [await state.asave_done("a", 0, "L", _row("m")) for _ in range(2)]

    assert asyncio.run(main()) == [True, False]
    assert (state.tickets(), state.answers(), state.done()) == (
        {"a": "T"},
        {"a": {"m": "A"}},
        {"a": (0, "L")},
    )


@pytest.mark.parametrize("kind", KINDS)
def test_racing_writers_finish_each_item_once(kind, opener):
    """Four writers (each with its own connection) finish the same 40 items at once: every item
    is finished by exactly one of them, and completion order numbers 1..40 without a gap."""
    states = [opener(kind) for _ in range(4)]
    won: list[list[str]] = [[] for _ in states]
    start = threading.Barrier(len(states))

    def writer(k: int) -> None:
        start.wait()
        for i in range(40):
            if states[k].save_done(f"x{i}", i, f"line {i} by {k}", _row("m")):
                won[k].append(f"x{i}")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(len(states))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finished = sorted(item for w in won for item in w)
    assert finished == sorted(f"x{i}" for i in range(40))
    done = states[0].done()
    for k, items in enumerate(won):
        assert all(done[item][1].endswith(f"by {k}") for item in items)
    assert [r["seq"] for r in states[0].timeline()] == list(range(1, 41))


@pytest.mark.parametrize("kind", KINDS)
def test_clear_forgets_the_run_and_its_counters_only(kind, store_url):
    store: Store = open_store(store_url(kind))
    try:
        state = open_run_state(store, "run/abc")
        state.save_ticket("a", "T")
        state.save_answer("a", "m", "A")
        state.save_done("a", 0, "L", _row("m"))
        store.add("run/abc", {"n": 1.0}, event_id="e1")
        store.set_meta("run/abc", "run.key", "abc")
        store.add("other", {"n": 5.0}, event_id="e1")
        state.clear()
        assert (state.tickets(), state.answers(), state.done(), state.timeline()) == (
            {},
            {},
            {},
            [],
        )
        assert store.read("run/abc") == {} and store.get_meta("run/abc", "run.key") is None
        assert store.read("other") == {"n": 5.0}
        # The event id is forgotten too: the restarted run's first write counts.
        assert store.add("run/abc", {"n": 1.0}, event_id="e1")
        assert state.save_done("a", 0, "L2", _row("m"))
        assert [r["seq"] for r in state.timeline()] == [1]
        state.close()
    finally:
        store.close()


@pytest.mark.parametrize("kind", SHARED)
def test_runs_sharing_a_server_never_mix(kind, store_url):
    store = open_store(store_url(kind))
    try:
        one, two = open_run_state(store, "run/one"), open_run_state(store, "run/two")
        one.save_ticket("x", "T1")
        two.save_ticket("x", "T2")
        one.save_answer("x", "m", "A1")
        assert one.save_done("x", 0, "L1", _row("m"))
        assert two.save_done("x", 0, "L2", _row("m"))  # the same item id, another run
        store.add("run/one", {"n": 1.0})
        store.add("run/two", {"n": 2.0})
        assert one.tickets() == {"x": "T1"} and two.tickets() == {"x": "T2"}
        assert two.answers() == {}
        two.clear()
        assert one.done() == {"x": (0, "L1")} and two.done() == {}
        assert store.read("run/one") == {"n": 1.0} and store.read("run/two") == {}
        assert [r["seq"] for r in one.timeline()] == [1]
    finally:
        store.close()


def test_a_store_that_forgets_is_refused_with_the_alternatives():
    with pytest.raises(StoreError, match=r"memory://.*sqlite:///.*redis://.*postgresql://"):
        open_run_state("memory://", "run")


@pytest.mark.parametrize(
    "url",
    ["redis://:s3cret@127.0.0.1:1/0", "postgresql://smart:s3cret@127.0.0.1:1/smart"],
)
def test_an_unreachable_server_is_named_without_its_password(url):
    with pytest.raises(StoreError) as caught:
        open_run_state(url, "run")
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


def test_sqlite_state_shares_the_store_file(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    state = open_run_state(store, "run")
    state.save_done("a", 0, "L", _row("m"))
    state.close()
    assert open_run_state(f"sqlite:///{tmp_path / 's.db'}", "run").done() == {"a": (0, "L")}
    store.close()
