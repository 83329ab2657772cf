"""The server over real HTTP, driven by the official openai and anthropic SDKs unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel

from smart_core.testing import (
    Behaviour,
    FakeLLMServer,
    Fault,
    Prompt,
    Reply,
    ToolCall,
    count_tokens,
    echo,
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city.",
    "input_schema": WEATHER["function"]["parameters"],
}


@pytest.fixture(scope="module")
def running():
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def server(running: FakeLLMServer) -> FakeLLMServer:
    """The module's server, with no scripted models, an empty log and fresh call counts."""
    running.models.clear()
    running.default = echo
    running.reset()
    return running


def oai(server: FakeLLMServer, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", **kw)


def ant(server: FakeLLMServer, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", **kw)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# -- OpenAI -----------------------------------------------------------------------------------


def test_openai_echo_with_the_requested_model_and_deterministic_usage(server):
    r = oai(server).chat.completions.create(model="gpt-4o-mini", messages=user("hi there"))
    assert r.model == "gpt-4o-mini"
    assert r.choices[0].message.content == "Hello! You said: hi there"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (
        count_tokens("hi there"),
        count_tokens("Hello! You said: hi there"),
    )


async def test_openai_async_stream_with_include_usage_ends_with_a_usage_chunk(server):
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test")
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=user("stream me please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! You said: stream me please"
    assert len(chunks) > 4 and all(c.model == "gpt-4o" for c in chunks)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == count_tokens(text)
    assert server.requests[-1].stream is True


class Weather(BaseModel):
    city: str
    days: int
    note: str | None


def test_openai_parse_with_a_pydantic_response_format(server):
    r = oai(server).chat.completions.parse(
        model="gpt-4o-mini",
        messages=user("Forecast for 'Lyon' over 3 days, 'bring an umbrella'"),
        response_format=Weather,
    )
    assert r.choices[0].message.parsed == Weather(city="Lyon", days=3, note="bring an umbrella")


def test_openai_json_object_mode_returns_the_quoted_keys(server):
    r = oai(server).chat.completions.create(
        model="gpt-4o-mini",
        messages=user("Reply in JSON with keys 'answer' and 'confidence'"),
        response_format={"type": "json_object"},
    )
    assert set(json.loads(r.choices[0].message.content)) == {"answer", "confidence"}


def test_openai_forced_tool_call_streams_deltas_the_sdk_reassembles(server):
    other = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}
    with oai(server).chat.completions.stream(
        model="gpt-4o-mini",
        messages=user("Weather in 'Zürich' for 5 days"),
        tools=[other, WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Zürich", "days": 5}


def test_openai_tool_choice_none_and_tool_results_get_text(server):
    client = oai(server)
    r = client.chat.completions.create(
        model="m", messages=user("weather?"), tools=[WEATHER], tool_choice="none"
    )
    assert r.choices[0].message.content == "Hello! You said: weather?"
    history = [
        *user("weather?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    r = client.chat.completions.create(model="m", messages=history, tools=[WEATHER])
    assert r.choices[0].message.content == "The tool returned: sunny"


def test_openai_stop_truncates(server):
    r = oai(server).chat.completions.create(
        model="m", messages=user("one two three"), stop=["two", "zzz"]
    )
    assert r.choices[0].message.content == "Hello! You said: one "


# -- Anthropic --------------------------------------------------------------------------------


def test_anthropic_create_with_system_and_stop_sequences(server):
    seen: list[Prompt] = []
    server.models["claude-x"] = lambda p: seen.append(p) or "alpha beta STOP gamma"
    m = ant(server).messages.create(
        model="claude-x",
        max_tokens=100,
        system="be brief",
        messages=user("go"),
        stop_sequences=["STOP"],
    )
    assert m.model == "claude-x" and m.content[0].text == "alpha beta "
    assert (m.stop_reason, m.stop_sequence) == ("stop_sequence", "STOP")
    assert [(x.role, x.text) for x in seen[0].messages] == [("system", "be brief"), ("user", "go")]
    assert m.usage.input_tokens == count_tokens("be brief\ngo")


def test_anthropic_stream_text_and_final_usage(server):
    with ant(server).messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=user("hello world")
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "Hello! You said: hello world" and len(pieces) > 2
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == count_tokens("hello world")
    assert final.usage.output_tokens == count_tokens("Hello! You said: hello world")


async def test_anthropic_async_stream_of_a_tool_use_with_input_json_deltas(server):
    client = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="k")
    async with client.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=100,
        messages=user("Weather in '東京' for 2 days"),
        tools=[ANTHROPIC_WEATHER],
        tool_choice={"type": "any"},
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert "input_json" in kinds
    block = final.content[0]
    assert (block.type, block.name, block.input) == (
        "tool_use",
        "get_weather",
        {"city": "東京", "days": 2},
    )
    assert final.stop_reason == "tool_use"


def test_both_apis_give_a_responder_the_same_prompt(server):
    seen: list[Prompt] = []
    server.models["same"] = lambda p: seen.append(p) or "ok"
    oai(server).chat.completions.create(
        model="same",
        messages=[{"role": "system", "content": "sys"}, *user("q")],
        tools=[WEATHER],
        tool_choice="required",
    )
    ant(server).messages.create(
        model="same",
        max_tokens=10,
        system="sys",
        messages=user("q"),
        tools=[ANTHROPIC_WEATHER],
        tool_choice={"type": "any"},
    )
    a, b = seen
    assert (a.api, b.api) == ("openai", "anthropic")
    assert a.messages == b.messages and a.tools == b.tools
    assert a.tool_choice == b.tool_choice == "required" and a.last_user_text == "q"


def test_function_behaviours_can_return_tool_calls_and_token_counts(server):
    server.models["scripted"] = lambda p: Reply(
        tool_calls=(ToolCall("get_weather", {"city": "Oslo", "days": 1}),),
        input_tokens=100,
        output_tokens=7,
    )
    r = oai(server).chat.completions.create(model="scripted", messages=user("x"), tools=[WEATHER])
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (100, 7)


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_rate_limits_are_retried_after_the_retry_after_header(server, api):
    server.models["m"] = Behaviour(faults=[Fault("rate_limit", calls=[1, 2], retry_after=1.0)])
    start = time.monotonic()
    if api == "openai":
        text = oai(server).chat.completions.create(model="m", messages=user("hi"))
        assert text.choices[0].message.content == "Hello! You said: hi"
    else:
        ant(server).messages.create(model="m", max_tokens=10, messages=user("hi"))
    elapsed = time.monotonic() - start
    # The header says 1 s twice; the SDKs' own backoff for two retries waits at most
    # 0.5 s + 1 s. A lower bound on elapsed time holds however loaded the machine is.
    assert elapsed >= 2.0
    assert [(r.status, r.fault) for r in server.requests] == [
        (429, "rate_limit"),
        (429, "rate_limit"),
        (200, None),
    ]


def test_rate_limit_error_carries_the_header_and_names_the_call(server):
    server.models["m"] = Behaviour(faults=[Fault("rate_limit", retry_after=7)])
    with pytest.raises(openai.RateLimitError) as info:
        oai(server, max_retries=0).chat.completions.create(model="m", messages=user("hi"))
    assert info.value.response.headers["retry-after"] == "7"
    assert "injected rate_limit for model 'm' (call 1)" in str(info.value)


def test_server_errors_on_scheduled_calls_and_sdk_retries_recover(server):
    server.models["m"] = Behaviour(faults=[Fault("server_error", every=3)])
    client = oai(server, max_retries=0)
    statuses = []
    for _ in range(6):
        try:
            client.chat.completions.create(model="m", messages=user("hi"))
            statuses.append(200)
        except openai.InternalServerError as exc:
            statuses.append(exc.status_code)
    assert statuses == [200, 200, 500, 200, 200, 500]
    server.models["m"] = Behaviour(faults=[Fault("server_error", calls=[7])])
    with pytest.raises(anthropic.InternalServerError):
        ant(server, max_retries=0).messages.create(model="m", max_tokens=5, messages=user("x"))
    # With its default retries the SDK recovers from the one failed call.
    ant(server).messages.create(model="m", max_tokens=5, messages=user("x"))
    assert [r.status for r in server.requests[-2:]] == [500, 200]


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_hang_makes_the_sdk_raise_its_timeout_error(server, api):
    server.models["m"] = Behaviour(faults=[Fault("timeout")])
    start = time.monotonic()
    if api == "openai":
        with pytest.raises(openai.APITimeoutError):
            oai(server, timeout=0.3, max_retries=0).chat.completions.create(
                model="m", messages=user("hi")
            )
    else:
        with pytest.raises(anthropic.APITimeoutError):
            ant(server, timeout=0.3, max_retries=0).messages.create(
                model="m", max_tokens=5, messages=user("hi")
            )
    assert 0.3 <= time.monotonic() - start < 2
    assert [(r.status, r.fault) for r in server.requests] == [(504, "timeout")]


def test_a_finite_hang_answers_504_to_a_patient_client(server):
    server.models["m"] = Behaviour(faults=[Fault("timeout", hang=0.1)])
    with pytest.raises(openai.InternalServerError) as info:
        oai(server, max_retries=0).chat.completions.create(model="m", messages=user("hi"))
    assert info.value.status_code == 504


def test_a_truncated_openai_stream_raises_mid_iteration(server):
    server.models["m"] = Behaviour(faults=[Fault("truncate")])
    stream = oai(server).chat.completions.create(
        model="m", messages=user("a b c d e f g h"), stream=True
    )
    received = []
    with pytest.raises(httpx.RemoteProtocolError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert len(received) > 0 and "".join(received) != "Hello! You said: a b c d e f g h"
    assert [(r.status, r.fault) for r in server.requests] == [(200, "truncate")]


def test_a_truncated_anthropic_stream_raises_mid_iteration(server):
    server.models["m"] = Behaviour(faults=[Fault("truncate")])
    with (
        pytest.raises(httpx.RemoteProtocolError),
        ant(server).messages.stream(model="m", max_tokens=50, messages=user("a b c d")) as stream,
    ):
        for _ in stream.text_stream:
            pass


def test_a_truncated_json_body_is_a_connection_error(server):
    server.models["m"] = Behaviour(faults=[Fault("truncate", calls=[1])])
    with pytest.raises(openai.APIConnectionError):
        oai(server, max_retries=0).chat.completions.create(model="m", messages=user("hi"))
    # The next call is not scheduled to fail.
    assert oai(server).chat.completions.create(model="m", messages=user("hi")).choices


def test_random_faults_hit_the_same_calls_on_every_run(server):
    server.models["m"] = Behaviour(faults=[Fault("server_error", rate=0.5, seed=3)])
    client = oai(server, max_retries=0)

    def run() -> list[int]:
        server.reset()
        for _ in range(10):
            with contextlib.suppress(openai.InternalServerError):
                client.chat.completions.create(model="m", messages=user("hi"))
        return [r.call for r in server.requests if r.status == 500]

    first = run()
    assert first == run() and 0 < len(first) < 10
    assert first == [c for c in range(1, 11) if Fault("server_error", rate=0.5, seed=3).hits(c)]


def test_a_failing_responder_answers_500_that_the_sdk_does_not_retry(server):
    def broken(prompt: Prompt) -> str:
        raise KeyError("oops")

    server.models["broken"] = broken
    with pytest.raises(openai.InternalServerError, match="'broken' raised KeyError"):
        oai(server, max_retries=2).chat.completions.create(model="broken", messages=user("x"))
    assert server.calls("broken") == 1


# -- latency ----------------------------------------------------------------------------------


def test_latency_delays_the_first_byte(server):
    server.models["slow"] = Behaviour(latency=1.0)
    client = oai(server)
    start = time.monotonic()
    client.chat.completions.create(model="slow", messages=user("hi"))
    assert time.monotonic() - start >= 1.0
    start = time.monotonic()
    client.chat.completions.create(model="fast", messages=user("hi"))
    # Only the slow model waits; the bound leaves a loaded CI machine 0.9 s for one request.
    assert time.monotonic() - start < 0.9


def test_chunk_latency_spaces_streamed_events(server):
    server.models["drip"] = Behaviour(chunk_latency=0.04)
    stamps = []
    for _chunk in oai(server).chat.completions.create(
        model="drip", messages=user("one two three four"), stream=True
    ):
        stamps.append(time.monotonic())
    assert len(stamps) >= 8
    assert stamps[-1] - stamps[0] >= 0.04 * (len(stamps) - 1) * 0.9


# -- log, configuration, errors, lifecycle ----------------------------------------------------


def test_request_log_records_model_api_stream_status_and_call_numbers(server):
    client = oai(server)
    client.chat.completions.create(model="a", messages=user("1"))
    client.chat.completions.create(model="a", messages=user("2"), stream=True).close()
    ant(server).messages.create(model="b", max_tokens=5, messages=user("3"))
    log = server.requests
    assert [(r.model, r.api, r.stream, r.status, r.call) for r in log] == [
        ("a", "openai", False, 200, 1),
        ("a", "openai", True, 200, 2),
        ("b", "anthropic", False, 200, 1),
    ]
    assert log[0].prompt.last_user_text == "1" and log[2].body["max_tokens"] == 5
    assert (server.calls("a"), server.calls()) == (2, 3)
    server.reset()
    assert server.requests == [] and server.calls() == 0


def test_models_and_default_can_change_while_running(server):
    client = oai(server)
    server.default = "fallback text"
    assert (
        client.chat.completions.create(model="x", messages=user("q")).choices[0].message.content
        == "fallback text"
    )
    server.models["x"] = "scripted"
    assert (
        client.chat.completions.create(model="x", messages=user("q")).choices[0].message.content
        == "scripted"
    )


def test_malformed_bodies_and_unknown_paths_get_clear_errors(server):
    r = httpx.post(server.openai_base_url + "/chat/completions", content=b"{not json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(server.url + "/chat/completions", json={})
    assert r.status_code == 404 and server.openai_base_url in r.json()["error"]["message"]
    r = httpx.post(server.url + "/v1/messages", json={"model": "m", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]
    assert [(x.model, x.status, x.prompt) for x in server.requests][-1] == ("m", 400, None)


def test_context_managers_start_and_stop():
    server = FakeLLMServer({"m": "ok"})
    with pytest.raises(RuntimeError, match="not running"):
        server.url  # noqa: B018
    with server:
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
        assert server.openai_base_url == server.url + "/v1"
        assert server.anthropic_base_url == server.url
        port = server.port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/")


async def test_async_context_manager():
    async with FakeLLMServer({"m": "ok"}) as server:
        client = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="k")
        m = await client.messages.create(model="m", max_tokens=5, messages=user("x"))
        assert m.content[0].text == "ok"


def test_stop_cuts_a_hanging_request_promptly():
    server = FakeLLMServer({"m": Behaviour(faults=[Fault("timeout")])}).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            oai(server, max_retries=0).chat.completions.create(model="m", messages=user("x"))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    while not server.requests:
        time.sleep(0.01)
    start = time.monotonic()
    server.stop()
    thread.join(5)
    assert time.monotonic() - start < 2.5 and len(errors) == 1


def test_concurrent_requests_are_served_in_parallel():
    async def main() -> float:
        async with FakeLLMServer(default=Behaviour(latency=1.0)) as server:
            client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k")
            start = time.monotonic()
            await asyncio.gather(
                *(
                    client.chat.completions.create(model="m", messages=user(str(i)))
                    for i in range(8)
                )
            )
            return time.monotonic() - start

    # One at a time the eight would take at least 8 s; the margin absorbs a busy machine.
    assert asyncio.run(main()) < 4.0
