"""OpenAI's Embeddings API on the fake server: ``POST /v1/embeddings``, deterministic vectors.

A text's vector is the offline embedder's (:class:`smart_core.cache.HashedNgramEmbedder`: hashed
character n-grams, L2-normalised), so the same text always gets the same vector, paraphrases
that share spelling get close ones, and the official ``openai`` SDK, LangChain's
``OpenAIEmbeddings`` and LlamaIndex's ``OpenAIEmbedding`` run unchanged against it. Inputs given
as token ids (LangChain's default when it checks context lengths with tiktoken) are embedded as
the text of the ids: deterministic, but with no meaning; send text (LangChain:
``check_embedding_ctx_length=False``) to compare paraphrases.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

import numpy as np

from ._reply import BadRequest, count_tokens

__all__ = ["DEFAULT_DIMENSIONS", "embeddings_body", "parse_embeddings_request"]

#: Dimensions of a vector when the request names none (text-embedding-3-small's).
DEFAULT_DIMENSIONS = 1536


def parse_embeddings_request(body: Any) -> tuple[str, list[str], int, str]:
    """The model, the texts, the dimensions and the encoding (``float`` or ``base64``) a
    request asks for; :class:`BadRequest` naming the field otherwise."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with 'model' and 'input'")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model': give the embedding model's name, e.g. 'text-embedding-3-small'")
    texts = _texts(body.get("input"))
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        raise BadRequest(f"'dimensions' must be a positive integer, got {dimensions!r}")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest(f"'encoding_format' must be 'float' or 'base64', got {encoding!r}")
    return model, texts, dimensions, encoding


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) for v in value):  # one text as token ids
            return [" ".join(map(str, value))]
        out = []
        for v in value:
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, list) and all(isinstance(t, int) for t in v):
                out.append(" ".join(map(str, v)))
            else:
                break
        else:
            return out
    raise BadRequest(
        "'input' must be a string, a list of strings, a list of token ids or a list of such "
        f"lists (not empty), got {value!r:.80}"
    )


@cache
def _embedder(dimensions: int) -> Any:
    from ..cache.embedding import HashedNgramEmbedder

    return HashedNgramEmbedder(dimensions)


def embed(texts: list[str], dimensions: int) -> np.ndarray:
    """The fake's vectors for ``texts`` (unit rows; an empty text gets the zero vector)."""
    return _embedder(dimensions).embed(texts)


def embeddings_body(model: str, texts: list[str], dimensions: int, encoding: str) -> dict:
    """OpenAI's response: one ``embedding`` per text, as floats or as base64 of float32."""
    vectors = embed(texts, dimensions)
    data = []
    for i, row in enumerate(vectors):
        if encoding == "base64":
            value: Any = base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
        else:
            value = [float(x) for x in row]
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(count_tokens(t) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
