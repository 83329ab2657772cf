"""``smart serve`` end to end: the official openai SDK (sync, async, streaming, tools) and
LangChain's ChatOpenAI talk to the proxy, which routes through SMART to the local fake server."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from smart_core.proxy.background import serving
from smart_core.proxy.settings import ServeSettings, TaskSettings
from smart_core.testing import FakeLLMServer

REF, MINI = "openai:gpt-4o", "openai:gpt-4o-mini"
HAIKU = "anthropic:claude-haiku-4-5"
USER = [{"role": "user", "content": "Say 'hello'"}]


@pytest.fixture(scope="module")
def upstream():
    with FakeLLMServer() as server:
        yield server


def settings(upstream, tmp_path, **task) -> ServeSettings:
    base = {"name": "default", "reference": REF, "candidates": [MINI], "epsilon": 0.1}
    return ServeSettings(
        tasks=[TaskSettings(**{**base, **task})],
        store=f"sqlite:///{tmp_path / 'smart.db'}",
        base_urls={
            "openai": upstream.openai_base_url,
            "anthropic": upstream.anthropic_base_url,
        },
    )


@pytest.fixture
def proxy(upstream, tmp_path):
    with serving(settings(upstream, tmp_path).build()) as base_url:
        yield base_url


def test_a_completion_carries_the_answer_and_the_routing_record(proxy):
    client = openai.OpenAI(base_url=proxy, api_key="client-key-never-used")
    raw = client.chat.completions.with_raw_response.create(model="default", messages=USER)
    resp = raw.parse()
    assert resp.choices[0].message.content
    smart = resp.model_extra["smart"]
    assert smart["route"] in (REF, MINI) and resp.model == smart["route"]
    assert smart["certificate"]["epsilon"] == 0.1 and smart["cost"] > 0
    assert raw.headers["x-smart-route"] == smart["route"]
    assert raw.headers["x-smart-request-id"] == smart["request_id"]
    assert raw.headers["x-smart-task"] == "default"


def test_the_async_client_and_many_requests_at_once(proxy):
    async def main():
        client = openai.AsyncOpenAI(base_url=proxy, api_key="k")
        return await asyncio.gather(
            *(client.chat.completions.create(model="x", messages=USER) for _ in range(16))
        )

    out = asyncio.run(main())
    assert len({r.model_extra["smart"]["request_id"] for r in out}) == 16


def test_a_stream_relays_chunks_and_ends_with_the_record(proxy):
    client = openai.OpenAI(base_url=proxy, api_key="k")
    plain = client.chat.completions.create(model="default", messages=USER)
    chunks = list(client.chat.completions.create(model="default", messages=USER, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert "smart" in chunks[-1].model_extra
    assert all("smart" not in c.model_extra for c in chunks[:-1])


def test_tools_come_back_as_tool_calls(proxy):
    client = openai.OpenAI(base_url=proxy, api_key="k")
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    msgs = [{"role": "user", "content": "Weather in 'Paris'?"}]
    resp = client.chat.completions.create(
        model="default", messages=msgs, tools=tools, tool_choice="required"
    )
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    chunks = list(
        client.chat.completions.create(
            model="default", messages=msgs, tools=tools, tool_choice="required", stream=True
        )
    )
    names = [
        tc.function.name
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function and tc.function.name
    ]
    assert names == ["get_weather"]


def test_langchain_chat_openai_pointed_at_the_proxy(proxy):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="default", base_url=proxy, api_key="k")
    message = llm.invoke("Say 'hi'")
    assert message.content
    streamed = "".join(c.content for c in llm.stream("Say 'hi'"))
    assert streamed == message.content


def test_an_anthropic_candidate_is_translated_both_ways(upstream, tmp_path):
    app = settings(upstream, tmp_path, candidates=[HAIKU], epsilon=0.2).build()
    with serving(app) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="k")
        routes = set()
        for _ in range(60):
            resp = client.chat.completions.create(model="default", messages=USER)
            routes.add(resp.model_extra["smart"]["route"])
            assert resp.choices[0].message.content
    anthropic_calls = [r for r in upstream.requests if r.api == "anthropic"]
    assert anthropic_calls, "the Anthropic candidate was never called (probes call it)"


def test_an_anthropic_reference_streams_through_the_proxy(upstream, tmp_path):
    app = settings(upstream, tmp_path, reference=HAIKU, candidates=[MINI]).build()
    with serving(app) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="k")
        plain = client.chat.completions.create(model="default", messages=USER)
        chunks = list(client.chat.completions.create(model="default", messages=USER, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert plain.model == HAIKU and chunks[-1].model_extra["smart"]["route"] == HAIKU
    assert text == plain.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1


def test_metrics_health_models_and_errors(proxy):
    client = openai.OpenAI(base_url=proxy, api_key="k")
    client.chat.completions.create(model="default", messages=USER)
    root = proxy.removesuffix("/v1")
    metrics = httpx.get(f"{root}/metrics").text
    assert 'smart_requests_total{task="default"} 1.0' in metrics
    assert "smart_reference_only_usd" in metrics and "smart_route_lower_bound" in metrics
    assert httpx.get(f"{root}/healthz").json()["tasks"] == ["default"]
    assert next(m.id for m in client.models.list()) == "default"
    bad = httpx.post(f"{proxy}/chat/completions", content=b"{not json")
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    unknown = httpx.post(
        f"{proxy}/chat/completions", json={"messages": USER}, headers={"x-smart-task": "nope"}
    )
    assert unknown.status_code == 404 and "no task 'nope'" in unknown.json()["error"]["message"]


def test_a_failing_reference_is_a_502_with_the_reason(upstream, tmp_path):
    from smart_core.testing import Behaviour, Fault

    upstream.models["gpt-4o"] = Behaviour(faults=[Fault("server_error")])
    try:
        cfg = settings(upstream, tmp_path)
        cfg = ServeSettings(**{**cfg.__dict__, "max_retries": 0})
        with serving(cfg.build()) as base_url:
            resp = httpx.post(f"{base_url}/chat/completions", json={"messages": USER})
    finally:
        del upstream.models["gpt-4o"]
    assert resp.status_code == 502
    assert "openai:gpt-4o" in resp.json()["error"]["message"]
