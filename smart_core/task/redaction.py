"""Store URLs with their secrets hidden, for every message, log line and ``repr`` that names one.

A Redis or PostgreSQL URL may carry a password (``redis://:secret@host``) or a password query
parameter (``?password=secret``); deployments paste these URLs into configuration, and error
messages end up in logs and bug reports, so only the redacted form ever leaves a store.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redact_url"]

_HIDDEN = "***"
# Query parameters that carry secrets in libpq/redis-py URLs (compared case-insensitively).
_SECRET_PARAMS = frozenset({"password", "passwd", "pass", "sslpassword", "token", "secret"})
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^@/?#]*)@")


def redact_url(url: str) -> str:
    """``url`` with any password (in the userinfo or the query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        # Unparseable (e.g. a bad IPv6 literal): hide the whole userinfo rather than guess.
        return _USERINFO.sub(lambda m: f"{m.group(1)}{_HIDDEN}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{_HIDDEN}@{hostport}" if colon else f"{userinfo}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_PARAMS for key, _ in pairs):
            hidden = [(k, _HIDDEN if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
            query = urlencode(hidden, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
