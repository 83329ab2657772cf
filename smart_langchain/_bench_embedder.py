"""LangChain's ``OpenAIEmbeddings`` offered to ``smart bench qqp`` (entry point
``smart.bench_embedders``: ``langchain``), wrapped as SMART's embedder exactly as
``SmartChatModel(embeddings=...)`` wraps it, so the bench measures the adapter's real path:
the class, its batching of texts into requests, the dimensions asked for, the network."""

from __future__ import annotations

from smart_core.cache import FunctionEmbedder

from ._cache import embedder_of

__all__ = ["openai_embeddings"]


def openai_embeddings(*, base_url: str, dimensions: int) -> FunctionEmbedder:
    """``OpenAIEmbeddings`` against an OpenAI-compatible server at ``base_url`` (the bench's
    local fake server: no key is needed, one is set so the client starts).

    ``check_embedding_ctx_length=False`` sends the texts themselves: by default LangChain sends
    tiktoken ids, which a server other than OpenAI's cannot read as text."""
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=base_url,
        api_key="not-needed-on-the-local-server",
        dimensions=dimensions,
        check_embedding_ctx_length=False,
    )
    embedder = embedder_of(embeddings)
    assert embedder is not None
    return embedder
