"""open_store: URL dispatch, pass-through, and helpful errors for URLs that open nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smart_core.errors import StoreError
from smart_core.stores import MemoryStore, SqliteStore, open_store

__all__: list[str] = []


def test_memory_url() -> None:
    a, b = open_store("memory://"), open_store("MEMORY://")
    assert isinstance(a, MemoryStore) and isinstance(b, MemoryStore)
    assert a is not b
    assert a.url == "memory://"


def test_memory_url_with_path_is_rejected() -> None:
    with pytest.raises(StoreError, match="memory://"):
        open_store("memory://somewhere")


def test_sqlite_relative_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///state/smart.db")
    try:
        assert isinstance(store, SqliteStore)
        assert store.path == tmp_path / "state" / "smart.db"
        assert (tmp_path / "state" / "smart.db").exists()
        store.add("t", {"n": 1})
        # The path was fixed at open time: changing directory does not move the store.
        os.chdir(tmp_path / "state")
        assert store.read("t") == {"n": 1.0}
    finally:
        store.close()


def test_sqlite_absolute_url_and_url_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    url = f"sqlite:///{path}"  # path starts with "/": four slashes in total
    assert url.startswith("sqlite:////")
    with open_store(url) as store:
        assert isinstance(store, SqliteStore)
        assert store.path == path
        store.add("t", {"n": 2})
        with open_store(store.url) as again:
            assert again.read("t") == {"n": 2.0}


@pytest.mark.parametrize("url", ["sqlite://relative.db", "sqlite://", "sqlite:///"])
def test_malformed_sqlite_urls(url: str) -> None:
    with pytest.raises(StoreError, match="three slashes"):
        open_store(url)


def test_sqlite_in_memory_is_refused() -> None:
    with pytest.raises(StoreError, match="memory://"):
        open_store("sqlite:///:memory:")


def test_store_instance_passes_through() -> None:
    store = MemoryStore()
    assert open_store(store) is store


def test_redis_urls_open_redis_stores(redis_url: str) -> None:
    from smart_core.stores import RedisStore

    for url in (redis_url, redis_url.replace("redis://", "REDIS://")):
        with open_store(url) as store:
            assert isinstance(store, RedisStore)
            store.add("t", {"n": 1})
    with open_store(redis_url) as store:
        assert store.read("t") == {"n": 2.0}


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_urls_open_postgres_stores(postgres_url: str, scheme: str) -> None:
    from smart_core.stores import PostgresStore

    url = postgres_url.replace("postgresql://", f"{scheme}://")
    with open_store(url) as store:
        assert isinstance(store, PostgresStore)
        store.add("t", {"n": 1})
        assert store.read("t") == {"n": 1.0}


def test_unknown_scheme_lists_supported() -> None:
    with pytest.raises(StoreError) as info:
        open_store("mongodb://h/db")
    message = str(info.value)
    assert "mongodb" in message and "memory://" in message and "sqlite:///" in message
    assert "redis://" in message and "postgresql://" in message


def test_bare_path_suggests_sqlite_url() -> None:
    with pytest.raises(StoreError, match=r"sqlite:///state\.db"):
        open_store("state.db")


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        open_store(42)  # type: ignore[arg-type]
