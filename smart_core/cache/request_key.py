"""What makes two requests "the same" for the answer cache: a canonical JSON form and its hash,
and the scope (tenant, user) a request may read.

Canonical JSON sorts object keys, writes no spaces, keeps unicode as is and refuses NaN, so the
same request built twice (in another process, with keys in another order) hashes the same. A
value that has no JSON form raises a ``TypeError`` naming its type: silently hashing a ``repr``
(which may hold a memory address) would make every request a miss, or worse, two different
requests one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["canonical_json", "request_key", "scope_of"]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=canonical_json)
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic models (messages, tool schemas)
        return _plain(dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    raise TypeError(
        f"the answer cache cannot key a request holding a {type(value).__name__}; pass JSON "
        "values (str, numbers, lists, dicts, pydantic models), or turn the cache off for it"
    )


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text (sorted keys, no spaces, unicode kept, no NaN)."""
    return json.dumps(
        _plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def request_key(request: Any) -> str:
    """The SHA-256 of ``request``'s canonical JSON, in hex: the key of its cache entry."""
    return hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()


def scope_of(tenant: str, user: str | None, answers: str) -> str | None:
    """The namespace a request reads and writes: its tenant, and its user when the task's
    answers are per user (``None`` then if it names no user: it is neither served from the
    cache nor written to it, so no user ever gets an answer written for another)."""
    if answers == "per_user":
        if not user:
            return None
        return canonical_json([tenant, user])
    return canonical_json([tenant])
