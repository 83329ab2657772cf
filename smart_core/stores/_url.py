"""Turn a store URL into a Store, so configuration can name its state backend with one string.

Backends register a factory per URL scheme in ``_FACTORIES``. The network backends import their
clients (redis-py, psycopg) only when a URL asks for them: together they take a few hundred
milliseconds to import, which a process using SQLite should not pay.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import StoreError
from ..task.redaction import redact_url
from ._base import Store
from ._memory import MemoryStore
from ._sqlite import SqliteStore

__all__ = ["open_store"]

_Factory = Callable[[str], Store]


def _open_memory(url: str) -> Store:
    rest = url.partition("://")[2]
    if rest:
        raise StoreError(f"memory store URLs take no path, got {url!r}; use 'memory://'")
    return MemoryStore()


def _open_sqlite(url: str) -> Store:
    rest = url.partition("://")[2]
    # "sqlite:///rel.db" -> "rel.db"; "sqlite:////abs/x.db" -> "/abs/x.db" (SQLAlchemy's form).
    if not rest.startswith("/") or len(rest) < 2:
        raise StoreError(
            f"invalid SQLite store URL {url!r}: use three slashes and a path, e.g. "
            "'sqlite:///state/smart.db' (relative) or 'sqlite:////var/lib/smart.db' (absolute)"
        )
    return SqliteStore(rest[1:])


def _open_redis(url: str) -> Store:
    from ._redis import RedisStore

    return RedisStore(url)


def _open_postgres(url: str) -> Store:
    from ._postgres import PostgresStore

    return PostgresStore(url)


_FACTORIES: dict[str, _Factory] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "redis": _open_redis,
    "rediss": _open_redis,
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
}

# Schemes that open a store, for error messages.
_AVAILABLE = (
    "memory://",
    "sqlite:///path.db",
    "redis://host:6379/0",
    "rediss://host:6379/0",
    "postgresql://user@host/db",
)


def open_store(url: str | Store) -> Store:
    """Open the store a URL names; a Store passes through.

    ``memory://`` (this process), ``sqlite:///path.db`` (processes on one machine; relative paths
    are resolved against the current directory once, at open time), ``redis://`` / ``rediss://``
    and ``postgresql://`` / ``postgres://`` (a fleet). Passwords in URLs never appear in errors.
    """
    if isinstance(url, Store):
        return url
    if not isinstance(url, str):
        raise TypeError(f"open_store expects a URL string or a Store, got {type(url).__name__}")
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise StoreError(
            f"{url!r} is not a store URL; use one of {', '.join(_AVAILABLE)} "
            f"(for a file, e.g. 'sqlite:///{url}')"
        )
    factory = _FACTORIES.get(scheme.lower())
    if factory is None:
        raise StoreError(
            f"unknown store URL scheme {scheme!r} in {redact_url(url)!r}; "
            f"supported: {', '.join(_AVAILABLE)}"
        )
    return factory(url)
