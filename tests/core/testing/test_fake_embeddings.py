"""The fake server's ``/v1/embeddings``: the official OpenAI SDK and the framework embedding
clients get deterministic unit vectors, close for texts that share spelling."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest

from smart_core.testing import FakeLLMServer


@pytest.fixture(scope="module")
def server():
    with FakeLLMServer() as s:
        yield s


def _client(server: FakeLLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


def test_the_openai_sdk_gets_deterministic_unit_vectors(server):
    client = _client(server)
    texts = ["How do I reset my password?", "how do i reset my password", "Cancel my order"]
    first = client.embeddings.create(model="text-embedding-3-small", input=texts)
    again = client.embeddings.create(model="text-embedding-3-small", input=texts[0])
    vectors = np.array([d.embedding for d in first.data])
    assert vectors.shape == (3, 1536)
    assert [d.index for d in first.data] == [0, 1, 2]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(again.data[0].embedding, vectors[0])  # the same text, the same vector
    assert vectors[0] @ vectors[1] > 0.9 > vectors[0] @ vectors[2]
    assert first.usage.prompt_tokens > 0 and first.model == "text-embedding-3-small"


def test_float_and_base64_encodings_carry_the_same_vector(server):
    # The SDK asks for base64 by default and decodes it; a plain HTTP client asks for floats.
    sdk = _client(server).embeddings.create(model="e", input="hello there", dimensions=64)
    raw = httpx.post(
        server.openai_base_url + "/embeddings",
        json={"model": "e", "input": "hello there", "dimensions": 64, "encoding_format": "float"},
    ).json()
    assert len(sdk.data[0].embedding) == 64
    assert np.allclose(sdk.data[0].embedding, raw["data"][0]["embedding"], atol=1e-6)


def test_token_id_inputs_are_embedded_deterministically(server):
    client = _client(server)
    a = client.embeddings.create(model="e", input=[[1, 2, 3], [1, 2, 3]], dimensions=32)
    assert np.allclose(a.data[0].embedding, a.data[1].embedding)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "x"}, "'model'"),
        ({"model": "e", "input": []}, "'input'"),
        ({"model": "e", "input": [{"a": 1}]}, "'input'"),
        ({"model": "e", "input": "x", "dimensions": 0}, "'dimensions'"),
        ({"model": "e", "input": "x", "encoding_format": "hex"}, "'encoding_format'"),
    ],
)
def test_bad_requests_name_the_field(server, body, field):
    reply = httpx.post(server.openai_base_url + "/embeddings", json=body)
    assert reply.status_code == 400
    assert field in reply.json()["error"]["message"]


def test_embedding_requests_are_logged_under_their_model(server):
    server.reset()
    _client(server).embeddings.create(model="my-embedder", input=["a", "b"])
    assert server.calls("my-embedder") == 1
    assert server.requests[-1].status == 200 and server.requests[-1].api == "openai"


def test_langchain_and_llamaindex_embedding_clients_run_against_it(server):
    from langchain_openai import OpenAIEmbeddings
    from llama_index.embeddings.openai import OpenAIEmbedding

    lc = OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=server.openai_base_url,
        api_key="sk-test",
        check_embedding_ctx_length=False,
    )
    li = OpenAIEmbedding(
        model_name="text-embedding-3-small", api_base=server.openai_base_url, api_key="sk-test"
    )
    text = "Where is my parcel?"
    assert np.allclose(lc.embed_query(text), li.get_text_embedding(text), atol=1e-6)
