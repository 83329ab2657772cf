"""Streamed answers are priced, and the last chunk of a stream carries the certificate.

Real ``ChatOpenAI`` / ``ChatAnthropic`` clients against the local fake server. ``ChatOpenAI`` is
built as the docs build it, without ``stream_usage``: with a ``base_url`` (or
``OPENAI_BASE_URL``) LangChain then leaves usage off on streams, which priced every streamed
answer at $0 before SmartChatModel asked for it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from smart_core.testing import FakeLLMServer
from smart_langchain import EstimatedUsageWarning, SmartChatModel

REF, MINI, HAIKU = "gpt-4o", "gpt-4o-mini", "claude-haiku-4-5"
PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Classify the ticket: billing, bug or other."), ("human", "{ticket}")]
)
pytestmark = pytest.mark.filterwarnings("ignore:The model:DeprecationWarning")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "langchain.md"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REF: "billing", MINI: "billing", HAIKU: "billing"}) as srv:
        yield srv


def openai_model(server: FakeLLMServer, name: str, **kw: Any) -> ChatOpenAI:
    """``ChatOpenAI`` as a user writes it: no ``stream_usage``."""
    return ChatOpenAI(
        model=name, base_url=server.openai_base_url, api_key="sk-test", max_retries=0, **kw
    )


def anthropic_model(server: FakeLLMServer, name: str) -> ChatAnthropic:
    return ChatAnthropic(
        model=name, base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0
    )


def smart(server: FakeLLMServer, **settings: Any) -> SmartChatModel:
    params: dict[str, Any] = {"epsilon": 0.2, "seed": 0, "wait_for_probes": True}
    params.update(settings)
    return SmartChatModel(
        reference=params.pop("reference", None) or openai_model(server, REF),
        candidates=params.pop("candidates", None)
        or [openai_model(server, MINI), anthropic_model(server, HAIKU)],
        **params,
    )


async def stream(llm: Any, value: Any, api: str) -> list[Any]:
    """Every chunk of ``llm.stream(value)`` or of ``llm.astream(value)``.

    Async tests run in one event loop: ChatOpenAI shares its async HTTP client between calls,
    and connections opened in a loop that has since closed fail with a connection error.
    """
    if api == "sync":
        return list(llm.stream(value))
    return [c async for c in llm.astream(value)]


def certificate(chunks: list[AIMessageChunk]) -> dict[str, Any]:
    return chunks[-1].response_metadata["smart"]


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_a_streamed_chain_prices_reference_and_candidate_and_saves(
    server: FakeLLMServer, api: str
) -> None:
    llm = smart(server)
    chain = PROMPT | llm | StrOutputParser()
    first = certificate(await stream(llm, "I was charged twice", api))
    assert first["route"] == REF and first["probe"]
    # Exactly what the same answer costs when it is not streamed.
    assert first["cost"] > 0
    assert first["cost"] == pytest.approx(
        smart(server).invoke("I was charged twice").response_metadata["smart"]["cost"]
    )
    for i in range(60):
        assert "".join(await stream(chain, {"ticket": f"ticket {i}"}, api)) == "billing"
    routed = [certificate(await stream(llm, f"more {i}", api)) for i in range(10)]
    candidate_costs = [c["cost"] for c in routed if c["route"] == MINI]
    assert candidate_costs, "no streamed request was routed to the candidate"
    assert all(cost > 0 for cost in candidate_costs)
    ledger = llm.ledger()
    assert ledger.routes[MINI].requests > 0
    assert ledger.savings > 1.2, ledger.summary()
    # Usage was asked of the server on every streamed request; the user's models are untouched.
    streamed = [r for r in server.requests if r.stream and r.model != HAIKU]
    assert streamed and all(r.body["stream_options"]["include_usage"] for r in streamed)
    assert llm.reference.stream_usage is None


def test_invoke_with_streaming_true_is_priced(server: FakeLLMServer) -> None:
    plain = smart(server).invoke("I was charged twice").response_metadata["smart"]
    streamed = smart(server, streaming=True).invoke("I was charged twice")
    assert any(r.stream for r in server.requests)  # it did stream
    assert streamed.response_metadata["smart"]["cost"] == pytest.approx(plain["cost"])
    assert streamed.response_metadata["smart"]["cost"] > 0


def test_probe_candidates_that_stream_are_priced(server: FakeLLMServer) -> None:
    """A candidate built with ``streaming=True`` streams its probe calls too."""
    llm = smart(server, candidates=[openai_model(server, MINI, streaming=True)])
    for i in range(3):
        llm.invoke(f"q{i}")
    assert any(r.stream for r in server.requests if r.model == MINI)
    ledger = llm.ledger()
    assert ledger.routes[MINI].probes == 3
    assert ledger.routes[MINI].mean_cost > 0
    assert ledger.probe_candidate_spend > 0


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("reference", ["openai", "anthropic"])
async def test_the_last_chunk_carries_the_certificate(
    server: FakeLLMServer, api: str, reference: str
) -> None:
    ref = openai_model(server, REF) if reference == "openai" else anthropic_model(server, HAIKU)
    cands = [openai_model(server, MINI)]
    llm = smart(server, reference=ref, candidates=cands)
    chunks = await stream(llm, "I was charged twice", api)
    assert sum("smart" in c.response_metadata for c in chunks) == 1
    assert certificate(chunks)["cost"] > 0
    assert chunks[-1].chunk_position == "last"
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    assert total.text == "billing"
    assert total.usage_metadata and total.usage_metadata["output_tokens"] > 0


async def test_a_model_set_not_to_report_usage_is_priced_by_estimate_with_one_warning(
    server: FakeLLMServer,
) -> None:
    exact = smart(server).invoke("I was charged twice").response_metadata["smart"]["cost"]
    llm = smart(server, reference=openai_model(server, REF, stream_usage=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        costs = [
            certificate(await stream(llm, "I was charged twice", api))["cost"]
            for api in ("sync", "async")
        ]
    estimated = [w for w in caught if issubclass(w.category, EstimatedUsageWarning)]
    assert len(estimated) == 1  # once per model, not once per call
    message = str(estimated[0].message)
    assert repr(REF) in message and "stream_usage=True" in message
    # About four characters per token: the right order of magnitude, never $0.
    assert all(exact / 3 < cost < exact * 3 for cost in costs)


def _docs_blocks() -> tuple[str, str]:
    """The quick start (first Python block) and the Streaming section's block of the docs."""
    text = DOCS.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    section = text.split("\n## Streaming\n", 1)[1].split("\n## ", 1)[0]
    streaming = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert streaming, "docs/langchain.md: the Streaming section has no Python example"
    return blocks[0], streaming[0]


def test_the_docs_streaming_example_runs_as_written_and_is_priced(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The docs build ChatOpenAI() and ChatAnthropic() with no URL or key: point the SDKs at the
    # local server through their documented environment variables.
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.chdir(tmp_path)  # the example's sqlite:///smart.db
    quick_start, streaming = _docs_blocks()
    namespace: dict[str, Any] = {}
    exec(compile(quick_start, "docs/langchain.md (quick start)", "exec"), namespace)
    exec(compile(streaming, "docs/langchain.md (Streaming)", "exec"), namespace)
    llm: SmartChatModel = namespace["llm"]
    chunks = namespace["chunks"]
    assert certificate(chunks)["cost"] > 0
    llm.flush()
    ledger = llm.ledger()
    assert ledger.spent > 0 and ledger.reference_estimate > 0
    assert all(route.mean_cost > 0 for route in ledger.routes.values() if route.probes)
    llm.close()
