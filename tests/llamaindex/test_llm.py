"""Conformance suite for SmartLLM against the local server, with the real LlamaIndex OpenAI and
Anthropic classes inside: construction, metadata, the eight entry points on both kinds of route,
tools, structured prediction, per-call tasks, serialization."""

from __future__ import annotations

import json
import logging

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from smart_core import ConfigError
from smart_llamaindex import SMART_KEY, SmartLLM

from .conftest import HAIKU, MINI, REFERENCE, anthropic_llm, openai_llm, smart, warm_store

pytestmark = pytest.mark.filterwarnings("ignore:The model:DeprecationWarning")

CERT_KEYS = {"task", "route", "probe", "mix", "bound", "probes", "epsilon", "delta", "method"}
MSG = [ChatMessage(role="user", content="What is the capital of 'France'?")]
METHODS = [
    "chat",
    "achat",
    "stream_chat",
    "astream_chat",
    "complete",
    "acomplete",
    "stream_complete",
    "astream_complete",
]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


ADD = FunctionTool.from_defaults(add)


class Joke(BaseModel):
    setup: str
    punchline: str


async def call(llm: SmartLLM, method: str, **kwargs):
    """Run one entry point; returns (final response, all responses)."""
    fn = getattr(llm, method)
    arg = MSG if "chat" in method else "Say 'hello'"
    if method.startswith("astream"):
        items = [r async for r in await fn(arg, **kwargs)]
    elif method.startswith("stream"):
        items = list(fn(arg, **kwargs))
    elif method.startswith("a"):
        items = [await fn(arg, **kwargs)]
    else:
        items = [fn(arg, **kwargs)]
    return items[-1], items


def text_of(response) -> str:
    return response.message.content if hasattr(response, "message") else response.text


# -- construction ---------------------------------------------------------------------------------


def test_is_a_function_calling_llm_named_after_its_inner_models(server):
    llm = smart(server)
    assert isinstance(llm, FunctionCallingLLM)
    assert llm.model_names == [REFERENCE, MINI, HAIKU]
    assert list(llm.llms) == [REFERENCE, MINI, HAIKU]
    assert llm.router.config.reference.name == REFERENCE
    assert llm.class_name() == "SmartLLM"


def test_metadata_is_the_most_restrictive_of_the_inner_models(server):
    llm = smart(server)
    metas = [m.metadata for m in llm.llms.values()]
    meta = llm.metadata
    assert meta.context_window == min(m.context_window for m in metas)
    assert meta.num_output == min(m.num_output for m in metas if m.num_output > 0)
    assert meta.is_chat_model and meta.is_function_calling_model

    small = anthropic_llm(server, HAIKU, max_tokens=64)
    llm = SmartLLM(reference=openai_llm(server), candidates=[small], epsilon=0.1)
    assert llm.metadata.num_output == 64
    assert llm.metadata.context_window == 128000  # gpt-4o's, smaller than Claude's


def test_colliding_names_say_which_field_and_how_to_fix(server):
    with pytest.raises(ConfigError, match=r"candidates\[1\].*gpt-4o-mini.*dict"):
        SmartLLM(
            reference=openai_llm(server),
            candidates=[openai_llm(server, MINI), openai_llm(server, MINI)],
            epsilon=0.05,
        )
    with pytest.raises(ConfigError, match=r"candidates\[0\].*already used by reference"):
        SmartLLM(reference=openai_llm(server), candidates=[openai_llm(server)], epsilon=0.05)


def test_unknown_price_says_which_field_and_how_to_fix(server):
    with pytest.raises(ConfigError, match=r"candidates\[0\].*'mini-eu'.*prices="):
        SmartLLM(
            reference=openai_llm(server),
            candidates={"mini-eu": openai_llm(server, MINI)},
            epsilon=0.05,
        )
    llm = SmartLLM(
        reference=openai_llm(server),
        candidates={"mini-eu": openai_llm(server, MINI)},
        prices={"mini-eu": (0.2, 0.8)},
        epsilon=0.05,
    )
    assert llm.model_names == [REFERENCE, "mini-eu"]


def test_options_reach_the_engine(server):
    llm = smart(
        server,
        epsilon=0.1,
        delta=0.01,
        task="rag",
        expected_requests=5000,
        audit_rate=0.02,
        method="clopper-pearson",
        comparator="exact",
        prices={MINI: (0.1, 0.5)},
    )
    config = llm.router.config
    assert (config.epsilon, config.delta, config.task) == (0.1, 0.01, "rag")
    assert (config.expected_requests, config.audit_rate) == (5000, 0.02)
    assert config.method == "clopper-pearson" and config.comparator.name == "exact"
    assert config.price(MINI).input == 0.1
    assert smart(server).router.config.comparator.name == "tool_calls"  # the default


async def test_no_api_key_in_payloads_dicts_logs_or_the_store(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, the SDKs' included
    llm = smart(server, store=f"sqlite:///{tmp_path}/smart.db", wait_for_probes=True)
    llm.chat(MSG)
    list(llm.stream_complete("hi"))
    await llm.achat(MSG)
    llm.close()
    assert caplog.text and "sk-test" not in caplog.text and "sk-ant-test" not in caplog.text
    dumped = json.dumps(llm.to_dict(), default=str) + json.dumps(llm.to_payload(), default=str)
    dumped += llm.to_json()
    assert "sk-" not in dumped and "sqlite" not in dumped
    assert b"sk-test" not in (tmp_path / "smart.db").read_bytes()
    assert b"sk-ant" not in (tmp_path / "smart.db").read_bytes()


# -- the eight entry points -----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reference", ["openai", "anthropic"])
async def test_entry_point_on_a_probe(server, method, reference):
    """A fresh SmartLLM probes: the reference answers, candidates are compared and recorded."""
    llm = smart(server, reference=reference, wait_for_probes=True)
    ref = llm.model_names[0]
    before = server.calls(ref)
    final, items = await call(llm, method)
    info = final.additional_kwargs[SMART_KEY]
    assert info["route"] == ref and info["probe"] is True and info["fallback"] is False
    assert info["cost"] > 0 and set(info["certificate"]) >= CERT_KEYS
    assert info["certificate"]["route"] == ref
    assert text_of(final)
    assert server.calls(ref) == before + 1
    await llm.aflush()
    ledger = llm.ledger()
    assert ledger.requests == 1 and ledger.probes == 1
    for name in llm.model_names[1:]:
        assert ledger.routes[name].probes == 1 and ledger.routes[name].agreements == 1
    if "stream" in method:
        assert len(items) > 1
        assert all(SMART_KEY in r.additional_kwargs for r in items)
        assert ["certificate" in r.additional_kwargs[SMART_KEY] for r in items] == [False] * (
            len(items) - 1
        ) + [True]
        assert "".join(r.delta or "" for r in items) == text_of(final)


@pytest.mark.parametrize("method", METHODS)
async def test_entry_point_on_a_candidate_route(server, method):
    names = [REFERENCE, MINI, HAIKU]
    llm = smart(server, epsilon=0.2, audit_rate=0, store=warm_store(names, 0.2))
    for _ in range(20):
        final, _ = await call(llm, method)
        route = final.additional_kwargs[SMART_KEY]["route"]
        if route != REFERENCE:
            break
    assert route in (MINI, HAIKU)
    assert server.requests[-1].model == route
    assert final.additional_kwargs[SMART_KEY]["probe"] is False
    assert text_of(final)


async def test_task_is_chosen_per_call(server):
    llm = smart(server, task="rag", wait_for_probes=True)
    llm.chat(MSG)
    llm.chat(MSG, smart_task="triage")
    r = await llm.acomplete("hi", smart_task="triage")
    assert r.additional_kwargs[SMART_KEY]["task"] == "triage"
    assert r.additional_kwargs[SMART_KEY]["certificate"]["task"] == "triage"
    joke = llm.structured_predict(
        Joke, PromptTemplate("A joke about {topic}"), llm_kwargs={"smart_task": "jokes"}, topic="x"
    )
    assert isinstance(joke, Joke)
    assert llm.ledger().requests == 1
    assert llm.ledger("triage").requests == 2
    assert llm.ledger("jokes").requests == 1
    assert all("smart_task" not in (q.body or {}) for q in server.requests[-6:])


# -- tools and structured prediction -------------------------------------------------------------


@pytest.mark.parametrize("reference", ["openai", "anthropic"])
async def test_tool_calling_entry_points(server, reference):
    llm = smart(server, reference=reference, wait_for_probes=True)
    responses = [
        llm.chat_with_tools([ADD], user_msg="Add 3 and 4"),
        await llm.achat_with_tools([ADD], user_msg="Add 3 and 4"),
        list(llm.stream_chat_with_tools([ADD], user_msg="Add 3 and 4"))[-1],
        [r async for r in await llm.astream_chat_with_tools([ADD], user_msg="Add 3 and 4")][-1],
    ]
    for r in responses:
        (selection,) = llm.get_tool_calls_from_response(r)
        assert selection.tool_name == "add" and selection.tool_kwargs == {"a": 3, "b": 4}
    await llm.aflush()
    ledger = llm.ledger()
    # Probes compared the candidates' tool calls with the reference's: all agree.
    for name in llm.model_names[1:]:
        assert ledger.routes[name].agreements == ledger.routes[name].probes == 4


def test_tool_calls_are_parsed_by_the_model_that_answered(server):
    llm = smart(server)
    r = llm.chat_with_tools([ADD], user_msg="Add 3 and 4")
    r.additional_kwargs[SMART_KEY]["route"] = HAIKU
    calls = []
    haiku = llm.llms[HAIKU]
    original = type(haiku).get_tool_calls_from_response

    def spy(self, response, **kwargs):
        calls.append(self.model)
        return original(self, response, **kwargs)

    try:
        type(haiku).get_tool_calls_from_response = spy
        llm.get_tool_calls_from_response(r)
    finally:
        type(haiku).get_tool_calls_from_response = original
    assert calls == [HAIKU]


async def test_predict_and_call(server):
    llm = smart(server)
    assert llm.predict_and_call([ADD], user_msg="Add 3 and 4").response == "7"
    assert (await llm.apredict_and_call([ADD], user_msg="Add 3 and 4")).response == "7"


@pytest.mark.parametrize("reference", ["openai", "anthropic"])
async def test_structured_prediction(server, reference):
    llm = smart(server, reference=reference, wait_for_probes=True)
    prompt = PromptTemplate("Tell a joke about {topic}.")
    joke = llm.structured_predict(Joke, prompt, topic="cats")
    assert isinstance(joke, Joke)
    assert isinstance(await llm.astructured_predict(Joke, prompt, topic="dogs"), Joke)
    sllm = llm.as_structured_llm(Joke)
    r = sllm.chat([ChatMessage(role="user", content="A joke about owls")])
    assert isinstance(r.raw, Joke)
    r = await sllm.achat([ChatMessage(role="user", content="A joke about owls")])
    assert isinstance(r.raw, Joke)
    # Streamed structured output: the same objects the reference alone would give. (LlamaIndex's
    # Anthropic integration yields only empty partial objects here, with or without SmartLLM.)
    expected = Joke if reference == "openai" else BaseModel
    partials = list(llm.stream_structured_predict(Joke, prompt, topic="bees"))
    assert isinstance(partials[-1], expected)
    partials = [p async for p in await llm.astream_structured_predict(Joke, prompt, topic="ants")]
    assert isinstance(partials[-1], expected)
    await llm.aflush()
    for name in llm.model_names[1:]:
        assert llm.ledger().routes[name].agreements == 6


async def test_background_probes_are_recorded_by_flush_and_aflush(server):
    llm = smart(server)  # wait_for_probes=False: the user does not wait for the candidates
    llm.chat(MSG)
    list(llm.stream_complete("hi"))
    llm.flush()
    assert llm.ledger().routes[MINI].probes == 2
    await llm.achat(MSG)
    [r async for r in await llm.astream_chat(MSG)]
    await llm.aflush()
    assert llm.ledger().routes[MINI].probes == llm.ledger().routes[HAIKU].probes == 4
    await llm.aclose()
