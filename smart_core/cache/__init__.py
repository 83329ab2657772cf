"""The answer cache: earlier answers of the reference, served again for identical requests.

A layer between the stores (where entries live, beside the counters) and the engine (whose
serving flow looks a request up before any model is called). See docs/cache.md.
"""

from .answer_cache import (
    EXACT_ROUTE,
    SEMANTIC_HIT_ROUTE,
    AnswerCache,
    AnswerCodec,
    CacheHit,
    CacheLookup,
    PlainCodec,
    RequestCache,
    hit_increments,
)
from .embedding import Embedder, FunctionEmbedder, HashedNgramEmbedder
from .entry import CachedAnswer
from .request_key import canonical_json, request_key, scope_of

__all__ = [
    "EXACT_ROUTE",
    "SEMANTIC_HIT_ROUTE",
    "AnswerCache",
    "AnswerCodec",
    "CacheHit",
    "CacheLookup",
    "CachedAnswer",
    "Embedder",
    "FunctionEmbedder",
    "HashedNgramEmbedder",
    "PlainCodec",
    "RequestCache",
    "canonical_json",
    "hit_increments",
    "request_key",
    "scope_of",
]
