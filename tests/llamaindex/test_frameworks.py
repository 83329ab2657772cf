"""SmartLLM inside LlamaIndex itself: Settings.llm in a VectorStoreIndex query engine (sync, async,
streaming) and a FunctionAgent using a tool, with real OpenAI and Anthropic clients inside."""

from __future__ import annotations

import pytest
from llama_index.core import Document, MockEmbedding, Settings, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from .conftest import HAIKU, MINI, REFERENCE, smart, warm_store
from .test_instrumentation import ENDS, STARTS, events  # noqa: F401  (fixture)

pytestmark = pytest.mark.filterwarnings("ignore:The model:DeprecationWarning")

DOCS = [
    Document(text=f"Warehouse {i} stores item code WX-{i:03d} and ships on day {i % 7}.")
    for i in range(12)
]
QUESTION = "Which item code does warehouse 5 store?"


@pytest.fixture
def index(restore_settings):
    Settings.embed_model = MockEmbedding(embed_dim=8)
    return VectorStoreIndex.from_documents(DOCS)


def test_settings_llm_query_engine_sync(server, index, events):  # noqa: F811
    Settings.llm = smart(server, wait_for_probes=True)
    response = index.as_query_engine().query(QUESTION)
    assert "warehouse 5" in str(response).lower()
    assert Settings.llm.ledger().requests == 1
    assert events.count(STARTS) == 1 and events.count(ENDS) == 1


async def test_settings_llm_query_engine_async(server, index, events):  # noqa: F811
    Settings.llm = smart(server, wait_for_probes=True)
    response = await index.as_query_engine().aquery(QUESTION)
    assert "warehouse 5" in str(response).lower()
    assert Settings.llm.ledger().requests == 1
    assert events.count(STARTS) == 1 and events.count(ENDS) == 1


def test_settings_llm_query_engine_streaming(server, index, events):  # noqa: F811
    Settings.llm = smart(server, wait_for_probes=True)
    response = index.as_query_engine(streaming=True).query(QUESTION)
    tokens = list(response.response_gen)
    assert len(tokens) > 1 and "warehouse 5" in "".join(tokens).lower()
    Settings.llm.flush()
    assert Settings.llm.ledger().requests == 1
    assert events.count(STARTS) == 1 and events.count(ENDS) == 1


async def test_settings_llm_query_engine_async_streaming(server, index, events):  # noqa: F811
    Settings.llm = smart(server, wait_for_probes=True)
    response = await index.as_query_engine(streaming=True).aquery(QUESTION)
    tokens = [t async for t in response.async_response_gen()]
    assert len(tokens) > 1 and "warehouse 5" in "".join(tokens).lower()
    await Settings.llm.aflush()
    assert Settings.llm.ledger().requests == 1
    assert events.count(STARTS) == 1 and events.count(ENDS) == 1


async def test_query_engines_on_candidate_routes(server, index):
    names = [REFERENCE, MINI, HAIKU]
    Settings.llm = smart(server, epsilon=0.2, audit_rate=0, store=warm_store(names, 0.2))
    engine = index.as_query_engine()
    routed_before = sum(r.requests for r in Settings.llm.ledger().routes.values())
    for _ in range(5):
        assert "warehouse 5" in str(await engine.aquery(QUESTION)).lower()
        assert "warehouse 5" in str(engine.query(QUESTION)).lower()
    routed = sum(r.requests for r in Settings.llm.ledger().routes.values()) - routed_before
    assert routed >= 8  # almost every query answered by a candidate


@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")  # workflows
@pytest.mark.parametrize("warm", [False, True], ids=["reference", "candidates"])
async def test_function_agent_uses_a_tool(server, warm):
    used: list[tuple[int, int]] = []

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        used.append((a, b))
        return a * b

    names = [REFERENCE, MINI, HAIKU]
    kwargs = {"epsilon": 0.2, "audit_rate": 0, "store": warm_store(names, 0.2)} if warm else {}
    llm = smart(server, wait_for_probes=True, **kwargs)
    before = llm.ledger().requests
    routed_before = sum(r.requests for r in llm.ledger().routes.values())
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(multiply)], llm=llm)
    result = await agent.run("What is 6 times 7? Use the multiply tool.")
    assert used == [(6, 7)]
    assert str(result)
    await llm.aflush()
    ledger = llm.ledger()
    assert ledger.requests - before == 2  # the tool-calling step and the final answer
    if warm:  # the candidates answered (OpenAI's and Anthropic's parsers read their calls)
        assert sum(r.requests for r in ledger.routes.values()) > routed_before
    else:
        for name in (MINI, HAIKU):  # both steps probed; candidates agreed on the tool call
            assert ledger.routes[name].probes == 2
            assert ledger.routes[name].agreements >= 1


async def test_settings_llm_chat_engine(server, index, events):  # noqa: F811
    Settings.llm = smart(server, wait_for_probes=True)
    engine = index.as_chat_engine()
    assert "warehouse 5" in str(engine.chat(QUESTION)).lower()
    streamed = engine.stream_chat(QUESTION)
    assert "warehouse 5" in "".join(streamed.response_gen).lower()
    reply = await engine.achat(QUESTION)
    assert str(reply)
    Settings.llm.flush()
    await Settings.llm.aflush()
    assert Settings.llm.ledger().requests == events.count(STARTS) == events.count(ENDS) >= 3
