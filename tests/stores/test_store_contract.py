"""Behaviour every Store backend must share, run against each one."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest

from smart_core.errors import StoreError
from smart_core.stores import Store

__all__: list[str] = []


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def store(
    request: pytest.FixtureRequest, store_factory: Callable[[str], Callable[..., Store]]
) -> Iterator[Store]:
    s = store_factory(request.param)()
    yield s
    s.close()


def test_increments_accumulate(store: Store) -> None:
    assert store.add("t", {"n": 1, "x": 2})
    assert store.add("t", {"n": 1, "y": 3})
    assert store.read("t") == {"n": 2.0, "x": 2.0, "y": 3.0}
    assert all(isinstance(v, float) for v in store.read("t").values())


def test_floats_accumulate(store: Store) -> None:
    expected = 0.0
    for _ in range(10):
        store.add("t", {"cost": 0.1})
        expected += 0.1
    assert store.read("t")["cost"] == pytest.approx(expected, rel=1e-12)
    store.add("t", {"cost": -0.5})
    assert store.read("t")["cost"] == pytest.approx(expected - 0.5, rel=1e-12)


def test_event_ids_are_idempotent_per_task(store: Store) -> None:
    assert store.add("a", {"n": 1}, event_id="e1") is True
    assert store.add("a", {"n": 1}, event_id="e1") is False
    assert store.add("a", {"n": 5, "other": 1}, event_id="e1") is False
    assert store.add("b", {"n": 1}, event_id="e1") is True  # same id, other task: counts
    assert store.add("a", {"n": 1}, event_id="e2") is True
    assert store.add("a", {"n": 1}) is True  # no event id: never deduplicated
    assert store.add("a", {"n": 1}) is True
    assert store.read("a") == {"n": 4.0}
    assert store.read("b") == {"n": 1.0}


def test_event_with_no_increments_is_still_recorded(store: Store) -> None:
    assert store.add("t", {}, event_id="e") is True
    assert store.add("t", {"n": 1}, event_id="e") is False
    assert store.read("t") == {}
    assert store.add("t", {}) is True


def test_read_unknown_task_is_empty(store: Store) -> None:
    assert store.read("nope") == {}
    store.add("t", {"n": 1})
    assert store.read("nope") == {}


def test_read_returns_a_copy(store: Store) -> None:
    store.add("t", {"n": 1})
    snapshot = store.read("t")
    snapshot["n"] = 99
    assert store.read("t") == {"n": 1.0}


def test_tasks_lists_counter_and_meta_tasks(store: Store) -> None:
    assert store.tasks() == []
    store.add("zeta", {"n": 1})
    store.add("alpha", {"n": 1})
    store.add("alpha", {"m": 1})
    store.set_meta("meta-only", "k", "v")
    assert store.tasks() == ["alpha", "meta-only", "zeta"]


def test_meta_roundtrip_and_replace(store: Store) -> None:
    assert store.get_meta("t", "policy") is None
    store.set_meta("t", "policy", '{"threshold": 0.5}')
    assert store.get_meta("t", "policy") == '{"threshold": 0.5}'
    store.set_meta("t", "policy", "v2")
    assert store.get_meta("t", "policy") == "v2"
    assert store.get_meta("other", "policy") is None
    store.set_meta("t", "unicode", "ε ≤ 5 % — ok")
    assert store.get_meta("t", "unicode") == "ε ≤ 5 % — ok"
    assert store.read("t") == {}  # meta never shows up as counters


def test_non_finite_increment_is_rejected_and_writes_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="finite"):
        store.add("t", {"n": 1, "x": math.nan}, event_id="e")
    with pytest.raises(ValueError, match="finite"):
        store.add("t", {"x": math.inf})
    assert store.read("t") == {}
    assert store.add("t", {"n": 1}, event_id="e") is True  # the failed event was not recorded


async def test_async_twins(store: Store) -> None:
    assert await store.aadd("t", {"n": 1}, event_id="e") is True
    assert await store.aadd("t", {"n": 1}, event_id="e") is False
    assert await store.aread("t") == {"n": 1.0}
    await store.aclose()
    with pytest.raises(StoreError):
        store.read("t")


def test_closed_store_refuses_use(store: Store) -> None:
    store.add("t", {"n": 1})
    store.close()
    store.close()  # idempotent
    for call in (
        lambda: store.add("t", {"n": 1}),
        lambda: store.add("t", {}),
        lambda: store.read("t"),
        lambda: store.tasks(),
        lambda: store.set_meta("t", "k", "v"),
        lambda: store.get_meta("t", "k"),
    ):
        with pytest.raises(StoreError, match="closed"):
            call()


def test_context_manager_closes(store: Store) -> None:
    with store as s:
        s.add("t", {"n": 1})
    with pytest.raises(StoreError):
        store.read("t")


def test_url_attribute(store: Store) -> None:
    assert store.url.startswith(("memory://", "sqlite:///", "redis://", "postgresql://"))


def test_memory_store_remembers_a_bounded_number_of_event_ids():
    """A long-running process must not grow by every request's ids: the memory store keeps the
    most recent ``max_events`` for idempotency and forgets older ones."""
    from smart_core import MemoryStore

    store = MemoryStore(max_events=3)
    for i in range(5):
        assert store.add("t", {"n": 1.0}, event_id=f"e{i}")
    assert not store.add("t", {"n": 1.0}, event_id="e4")  # recent: still idempotent
    assert store.add("t", {"n": 1.0}, event_id="e0")  # forgotten: applied again
    assert store.read("t")["n"] == 6.0
    assert len(store._events) == 3
