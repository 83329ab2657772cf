"""``smart serve`` with an Anthropic reference answers OpenAI ``response_format`` JSON modes:
the official openai SDK's structured outputs (whole and streamed) and ``json_object``, and
LangChain's ``ChatOpenAI.with_structured_output``, all pointed at the proxy."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from smart_core.providers.anthropic_json import JSON_OBJECT_INSTRUCTION
from smart_core.proxy.background import serving
from smart_core.proxy.settings import ServeSettings, TaskSettings
from smart_core.testing import FakeLLMServer, echo

HAIKU, MINI = "anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"
ASK = [{"role": "user", "content": "Weather in 'Paris': 21 degrees"}]


class Weather(BaseModel):
    city: str
    degrees: float


def _json_if_asked(prompt):
    """An Anthropic model that follows the JSON instruction of the system prompt, if given."""
    system = next((m.text for m in prompt.messages if m.role == "system"), "")
    if JSON_OBJECT_INSTRUCTION in system:
        return json.dumps({"city": "Paris"})
    return echo(prompt)


@pytest.fixture
def upstream():
    with FakeLLMServer({"claude-haiku-4-5": _json_if_asked}) as server:
        yield server


@pytest.fixture
def proxy(upstream, tmp_path):
    settings = ServeSettings(
        tasks=[TaskSettings(name="default", reference=HAIKU, candidates=[MINI], epsilon=0.1)],
        store=f"sqlite:///{tmp_path / 'smart.db'}",
        base_urls={"openai": upstream.openai_base_url, "anthropic": upstream.anthropic_base_url},
    )
    with serving(settings.build()) as base_url:
        yield base_url


def _anthropic_bodies(upstream) -> list[dict]:
    return [r.body for r in upstream.requests if r.api == "anthropic" and r.status == 200]


def test_the_sdks_structured_output_is_a_forced_tool_on_anthropic(proxy, upstream):
    client = openai.OpenAI(base_url=proxy, api_key="k")
    resp = client.chat.completions.parse(model="default", messages=ASK, response_format=Weather)
    assert resp.model == HAIKU  # a new task's first answer is the reference's
    assert resp.choices[0].message.parsed == Weather(city="Paris", degrees=21)
    assert resp.choices[0].finish_reason == "stop" and not resp.choices[0].message.tool_calls
    sent = _anthropic_bodies(upstream)[-1]
    assert [t["name"] for t in sent["tools"]] == ["Weather"]
    assert sent["tool_choice"] == {"type": "tool", "name": "Weather"}
    assert sent["tools"][0]["input_schema"]["properties"].keys() == {"city", "degrees"}


def test_a_streamed_json_schema_answer_arrives_as_content_deltas(proxy, upstream):
    client = openai.OpenAI(base_url=proxy, api_key="k")
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "Weather", "schema": Weather.model_json_schema()},
    }
    whole = client.chat.completions.create(model="default", messages=ASK, response_format=fmt)
    chunks = list(
        client.chat.completions.create(
            model="default", messages=ASK, response_format=fmt, stream=True
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    pieces = [d.content for d in deltas if d.content]
    assert len(pieces) > 1  # relayed as the tool input's fragments came, not as one block
    assert json.loads("".join(pieces)) == json.loads(whole.choices[0].message.content)
    assert not any(d.tool_calls for d in deltas)
    assert chunks[-1].model_extra["smart"]["route"] == HAIKU  # too early to route elsewhere
    streamed = [r.body for r in upstream.requests if r.api == "anthropic" and r.stream]
    assert streamed[-1]["tool_choice"] == {"type": "tool", "name": "Weather"}


def test_json_object_is_asked_for_in_the_system_prompt(proxy, upstream):
    client = openai.OpenAI(base_url=proxy, api_key="k")
    resp = client.chat.completions.create(
        model="default",
        messages=[{"role": "system", "content": "You label weather."}, *ASK],
        response_format={"type": "json_object"},
    )
    assert json.loads(resp.choices[0].message.content) == {"city": "Paris"}
    sent = _anthropic_bodies(upstream)[-1]
    assert sent["system"] == f"You label weather.\n\n{JSON_OBJECT_INSTRUCTION}"
    assert "tools" not in sent


def test_langchain_with_structured_output_pointed_at_the_proxy(proxy):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="default", base_url=proxy, api_key="k")
    structured = llm.with_structured_output(Weather)  # json_schema response_format
    assert structured.invoke(ASK[0]["content"]) == Weather(city="Paris", degrees=21)
