"""The answer cache's storage (``Store.cache_*``), the same on every backend: entries kept apart
by task and scope, expiry, the size limit, atomic replacement, and async twins."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from smart_core.errors import StoreError
from smart_core.stores import Store

__all__: list[str] = []

NOW = 1_000_000.0
DAY = 86_400.0


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def store(
    request: pytest.FixtureRequest, store_factory: Callable[[str], Callable[..., Store]]
) -> Iterator[Store]:
    s = store_factory(request.param)()
    yield s
    s.close()


def put(
    store: Store,
    scope: str,
    key: str,
    value: str,
    *,
    at: float = NOW,
    ttl: float = DAY,
    limit: int = 1000,
    task: str = "t",
) -> None:
    store.cache_put(task, scope, key, value, now=at, expires_at=at + ttl, max_entries=limit)


def test_an_entry_is_read_back_only_under_its_own_task_scope_and_key(store: Store) -> None:
    put(store, '["acme",null]', "k1", "answer for acme")
    assert store.cache_get("t", '["acme",null]', "k1", now=NOW) == "answer for acme"
    assert store.cache_get("t", '["globex",null]', "k1", now=NOW) is None  # another tenant
    assert store.cache_get("t", '["acme","ann"]', "k1", now=NOW) is None  # another scope
    assert store.cache_get("other", '["acme",null]', "k1", now=NOW) is None  # another task
    assert store.cache_get("t", '["acme",null]', "k2", now=NOW) is None
    assert store.cache_size("t") == 1
    assert store.read("t") == {}  # entries are never counters


def test_same_key_in_two_scopes_are_two_entries(store: Store) -> None:
    put(store, "a", "k", "A")
    put(store, "b", "k", "B")
    assert store.cache_get("t", "a", "k", now=NOW) == "A"
    assert store.cache_get("t", "b", "k", now=NOW) == "B"
    assert store.cache_size("t") == 2


def test_a_write_replaces_the_entry_under_the_same_key(store: Store) -> None:
    put(store, "s", "k", "old")
    put(store, "s", "k", "new ε ≤ 5 % — ok\nsecond line")
    assert store.cache_get("t", "s", "k", now=NOW) == "new ε ≤ 5 % — ok\nsecond line"
    assert store.cache_size("t") == 1


def test_an_expired_entry_is_not_served_and_a_later_write_drops_it(store: Store) -> None:
    put(store, "s", "old", "v", ttl=10.0)
    assert store.cache_get("t", "s", "old", now=NOW + 9.9) == "v"
    assert store.cache_get("t", "s", "old", now=NOW + 10.0) is None
    put(store, "s", "fresh", "w", at=NOW + 20.0)
    assert store.cache_size("t") == 1
    assert store.cache_get("t", "s", "fresh", now=NOW + 20.0) == "w"


def test_the_size_limit_drops_the_entries_soonest_to_expire(store: Store) -> None:
    for i in range(10):
        put(store, "s", f"k{i}", f"v{i}", at=NOW + i, limit=4)
    assert store.cache_size("t") == 4
    kept = [i for i in range(10) if store.cache_get("t", "s", f"k{i}", now=NOW + 10) is not None]
    assert kept == [6, 7, 8, 9]
    put(store, "s", "k9", "again", at=NOW + 11, limit=4)  # a replacement adds nothing
    assert store.cache_size("t") == 4
    put(store, "s", "x", "v", task="other", limit=4)  # limits are per task
    assert store.cache_size("t") == 4 and store.cache_size("other") == 1


def test_clear_drops_one_tasks_entries(store: Store) -> None:
    put(store, "s", "k", "v")
    put(store, "s", "k", "v", task="keep")
    store.cache_clear("t")
    assert store.cache_size("t") == 0 and store.cache_get("t", "s", "k", now=NOW) is None
    assert store.cache_get("keep", "s", "k", now=NOW) == "v"
    put(store, "s", "k2", "v2", limit=1)  # the count starts again from zero
    put(store, "s", "k3", "v3", at=NOW + 1, limit=2)
    assert store.cache_size("t") == 2


def test_concurrent_writers_keep_the_limit_exact(store: Store) -> None:
    def writer(w: int) -> None:
        for i in range(25):
            put(store, "s", f"w{w}-{i}", "v", at=NOW + i, limit=30)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.cache_size("t") == 30
    put(store, "s", "last", "v", at=NOW + 30, limit=30)
    assert store.cache_size("t") == 30


def test_async_twins(store: Store) -> None:
    async def main() -> str | None:
        await store.acache_put("t", "s", "k", "v", now=NOW, expires_at=NOW + 5, max_entries=9)
        return await store.acache_get("t", "s", "k", now=NOW)

    assert asyncio.run(main()) == "v"


def test_a_closed_store_refuses_cache_use(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError):
        store.cache_get("t", "s", "k", now=NOW)
    with pytest.raises(StoreError):
        put(store, "s", "k", "v")
