"""Real Redis and PostgreSQL servers for the store tests, started once per test session.

The servers run from the Debian packages that scripts/services.sh installs, each on a free port
in a temporary folder, and are stopped when the session ends. Tests that need one are skipped,
with the reason, only when it cannot be started. Each test gets an emptied database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smart_core.stores import MemoryStore, SqliteStore, Store
from smart_core.testing.servers import PostgresServer, RedisServer, ServerUnavailable

__all__: list[str] = []


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer().start()
    except (ServerUnavailable, OSError) as exc:
        pytest.skip(f"no Redis server for the store tests: {exc}")
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer().start()
    except (ServerUnavailable, OSError) as exc:
        pytest.skip(f"no PostgreSQL server for the store tests: {exc}")
    yield server
    server.close()


def empty_redis(url: str) -> None:
    import redis

    with redis.Redis.from_url(url) as client:
        client.flushdb()


def empty_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "DROP TABLE IF EXISTS smart_counters, smart_events, smart_meta, smart_answers, "
            "smart_answer_counts"
        )


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis server, emptied for this test."""
    redis_server.start()  # a restart test may have left it stopped
    empty_redis(redis_server.url)
    return redis_server.url


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session's PostgreSQL server, its smart_* tables dropped for this test."""
    postgres_server.start()
    empty_postgres(postgres_server.url)
    return postgres_server.url


StoreFactory = Callable[..., Store]


@pytest.fixture
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], StoreFactory]]:
    """``store_factory(kind)`` -> a function opening a store of that kind (keyword arguments go to
    the store's constructor); every store of one kind in a test shares the same state."""
    opened: list[Store] = []

    def for_kind(kind: str) -> StoreFactory:
        if kind == "memory":
            shared = MemoryStore()
            return lambda **options: shared
        if kind == "sqlite":
            return lambda **options: _keep(SqliteStore(tmp_path / "s.db", **options))
        if kind == "redis":
            from smart_core.stores import RedisStore

            url = request.getfixturevalue("redis_url")
            return lambda **options: _keep(RedisStore(url, **options))
        if kind == "postgres":
            from smart_core.stores import PostgresStore

            url = request.getfixturevalue("postgres_url")
            return lambda **options: _keep(PostgresStore(url, **options))
        raise ValueError(kind)

    def _keep(store: Store) -> Store:
        opened.append(store)
        return store

    yield for_kind
    for store in opened:
        store.close()


@pytest.fixture
def shared_store_url(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``shared_store_url(kind)``: the URL other processes open to share this test's store."""

    def url(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / 's.db'}"
        return str(request.getfixturevalue(f"{kind}_url"))

    return url
