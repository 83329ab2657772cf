"""What only the network stores (Redis, PostgreSQL) do: keep passwords out of every message and
repr, explain an unreachable server, and share state between store objects and event loops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from smart_core.errors import StoreError
from smart_core.stores import Store, open_store
from smart_core.task.redaction import redact_url
from smart_core.testing.servers import free_port

__all__: list[str] = []

SECRET = "s3cr3t-pa55"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:pw@host/0", "rediss://user:***@host/0"),
        ("postgresql://u:p%40ss@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        ("postgresql://h/db?user=u&password=pw&sslmode=require", None),
        ("redis://host:6379/0", "redis://host:6379/0"),
    ],
)
def test_redact_url_hides_passwords_only(url: str, shown: str | None) -> None:
    redacted = redact_url(url)
    if shown is not None:
        assert redacted == shown
    else:
        assert "pw" not in redacted and "sslmode=require" in redacted and "user=u" in redacted


@pytest.mark.parametrize("scheme", ["redis", "postgresql"])
def test_unreachable_server_names_url_and_fix_without_password(
    scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    url = f"{scheme}://user:{SECRET}@127.0.0.1:{port}/0"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "***" in message
    assert "running" in message  # the fix: start the server / check host and port
    assert SECRET not in message
    assert SECRET not in repr(info.value)
    assert info.value.__cause__ is None or SECRET not in str(info.value.__cause__)
    assert SECRET not in caplog.text


def test_redis_password_stays_out_of_repr_and_url(redis_url: str) -> None:
    from smart_core.stores import RedisStore

    # The test server has no password; redis-py then ignores the one given (with a warning from
    # the server that we do not see), which is enough to check where the URL shows up.
    url = redis_url.replace("redis://", f"redis://:{SECRET}@")
    try:
        store = RedisStore(url)
    except StoreError as exc:  # a server that rejects AUTH without a password configured
        assert SECRET not in str(exc)
        return
    with store:
        assert SECRET not in repr(store) and SECRET not in store.url and "***" in store.url


def test_postgres_wrong_password_is_explained_without_it(postgres_url: str) -> None:
    from smart_core.stores import PostgresStore

    # Trust authentication accepts any password; a missing database shows the error path instead.
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@").rsplit("/", 1)[0] + "/nope"
    with pytest.raises(StoreError) as info:
        PostgresStore(url)
    message = str(info.value)
    assert SECRET not in message and "***" in message and "database" in message
    store = PostgresStore(postgres_url.replace("postgres@", f"postgres:{SECRET}@"))
    with store:
        assert SECRET not in repr(store) and "***" in store.url


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_two_store_objects_share_state(
    kind: str, store_factory: Callable[[str], Callable[..., Store]]
) -> None:
    make = store_factory(kind)
    a, b = make(), make()
    assert a.add("t", {"n": 1}, event_id="e")
    assert not b.add("t", {"n": 1}, event_id="e")
    b.set_meta("t", "k", "v")
    assert a.get_meta("t", "k") == "v"
    assert a.read("t") == b.read("t") == {"n": 1.0}


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_async_calls_from_several_event_loops(
    kind: str, store_factory: Callable[[str], Callable[..., Store]]
) -> None:
    """Each asyncio.run is a new loop (SmartLLM.achat is called that way); the store must not
    reuse a connection that belongs to a loop that is gone."""
    store = store_factory(kind)()

    async def once(i: int) -> dict[str, float]:
        results = await asyncio.gather(
            *(store.aadd("t", {"n": 1}, event_id=f"{i}-{j}") for j in range(20))
        )
        assert all(results)
        return await store.aread("t")

    for i in range(3):
        assert asyncio.run(once(i)) == {"n": 20.0 * (i + 1)}
    assert store.read("t") == {"n": 60.0}


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_non_finite_sum_writes_nothing(
    kind: str, store_factory: Callable[[str], Callable[..., Store]]
) -> None:
    store = store_factory(kind)()
    store.add("t", {"big": 1.5e308, "n": 1})
    with pytest.raises((StoreError, ValueError)):
        store.add("t", {"n": 1, "big": 1.5e308}, event_id="e")
    assert store.read("t") == {"big": 1.5e308, "n": 1.0}
    assert store.add("t", {"n": 1}, event_id="e")  # the failed event was not recorded
