"""SmartChatModel with real ChatOpenAI / ChatAnthropic clients against the local fake server:
fallbacks on 429 / 500 / timeouts, the reference's own error types, probes beside the answer,
tools and structured output compared across providers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessageChunk
from langchain_fakes import call_by_path
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from smart_core.testing import Behaviour, FakeLLMServer, Fault
from smart_langchain import SmartChatModel

REF, MINI, HAIKU = "gpt-4o", "gpt-4o-mini", "claude-haiku-4-5"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer({REF: "ok", MINI: "ok", HAIKU: "ok"}) as srv:
        yield srv


def openai_model(server: FakeLLMServer, name: str, **kw: Any) -> ChatOpenAI:
    params: dict[str, Any] = {"max_retries": 0, "timeout": 2.0, "stream_usage": True}
    params.update(kw)
    return ChatOpenAI(model=name, base_url=server.openai_base_url, api_key="sk-test", **params)


def anthropic_model(server: FakeLLMServer, name: str, **kw: Any) -> ChatAnthropic:
    params: dict[str, Any] = {"max_retries": 0, "default_request_timeout": 2.0}
    params.update(kw)
    return ChatAnthropic(
        model=name, base_url=server.anthropic_base_url, api_key="sk-ant-test", **params
    )


def smart(server: FakeLLMServer, **settings: Any) -> SmartChatModel:
    params: dict[str, Any] = {"epsilon": 0.2, "seed": 0}
    params.update(settings)
    return SmartChatModel(
        reference=params.pop("reference", None) or openai_model(server, REF),
        candidates=params.pop("candidates", None)
        or [openai_model(server, MINI, timeout=0.5), anthropic_model(server, HAIKU)],
        **params,
    )


def warm(llm: SmartChatModel, candidate: str) -> None:
    """Agreeing probes until requests are routed to ``candidate``."""
    routed = 0
    for i in range(300):
        route = llm.invoke(f"warm {i}").response_metadata["smart"]["route"]
        llm.flush()
        routed += route == candidate
        if routed >= 2:
            return
    raise AssertionError(llm.ledger().summary())


FAULTS = {
    "429": Fault("rate_limit", retry_after=0.01),
    "500": Fault("server_error"),
    "timeout": Fault("timeout", hang=1.0),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "path"),
    [
        ("429", "invoke"),
        ("500", "invoke"),
        ("timeout", "invoke"),
        ("429", "ainvoke"),
        ("timeout", "ainvoke"),
        ("500", "stream"),
        ("timeout", "stream"),
    ],
)
def test_a_routed_candidate_that_fails_falls_back_to_the_reference(
    server: FakeLLMServer, fault: str, path: str
) -> None:
    llm = smart(server, candidates=[openai_model(server, MINI, timeout=0.3)])
    warm(llm, MINI)
    server.models[MINI] = Behaviour("ok", faults=[FAULTS[fault]])
    server.reset()
    answers: list[Any] = []
    if path == "ainvoke":

        async def run_async() -> None:
            for i in range(5):
                answers.append(await llm.ainvoke(f"q{i}"))
            await llm.aflush()

        asyncio.run(run_async())
    for i in range(5 if path != "ainvoke" else 0):
        if path == "invoke":
            answers.append(llm.invoke(f"q{i}"))
        else:
            chunks = list(llm.stream(f"q{i}"))
            total: AIMessageChunk = chunks[0]
            for c in chunks[1:]:
                total = total + c
            answers.append(total)
    llm.flush()
    fell_back = [m for m in answers if m.response_metadata["smart"]["fallback"]]
    assert fell_back, "no request was routed to the candidate"
    assert all(m.text == "ok" for m in answers)
    assert {m.response_metadata["model_name"] for m in fell_back} == {REF}
    assert {r.fault for r in server.requests if r.model == MINI} == {FAULTS[fault].kind}
    stats = llm.ledger().routes[MINI]
    assert stats.fallbacks == len(fell_back)
    assert stats.agreements == stats.probes  # failures never count as disagreements


def test_a_truncated_candidate_stream_falls_back_or_raises_the_providers_error(
    server: FakeLLMServer,
) -> None:
    llm = smart(server, candidates=[openai_model(server, MINI)])
    warm(llm, MINI)
    server.models[MINI] = Behaviour("a fairly long answer " * 20, faults=[Fault("truncate")])
    outcomes = []
    probed = 0
    for i in range(8):
        try:
            chunks = list(llm.stream(f"q{i}"))
        except (openai.APIError, httpx.HTTPError):  # what plain ChatOpenAI raises too
            outcomes.append("raised")
            continue
        text = "".join(str(c.content) for c in chunks)
        smart_meta = next(
            c.response_metadata["smart"] for c in chunks if "smart" in c.response_metadata
        )
        outcomes.append("fell back" if smart_meta["fallback"] else smart_meta["route"])
        probed += bool(smart_meta["probe"])  # a probe calls the (cut) candidate too
        if smart_meta["route"] == REF:
            assert text == "ok"
    assert MINI not in outcomes  # a truncated answer is never passed off as complete
    # Every cut stream counts as a failure of the candidate (fallback or raised), never as a
    # disagreement.
    llm.flush()
    stats = llm.ledger().routes[MINI]
    cuts = outcomes.count("raised") + outcomes.count("fell back")
    assert stats.failures == cuts + probed
    assert stats.agreements == stats.probes


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("path", ["invoke", "ainvoke", "stream", "astream"])
def test_a_failing_reference_raises_the_providers_own_error(
    server: FakeLLMServer, provider: str, path: str
) -> None:
    if provider == "openai":
        name, reference, error = REF, openai_model(server, REF), openai.InternalServerError
    else:
        name = "claude-sonnet-4-5"
        reference, error = anthropic_model(server, name), anthropic.InternalServerError
    server.models[name] = Behaviour("ok", faults=[Fault("server_error")])
    llm = smart(server, reference=reference, candidates=[openai_model(server, MINI)])

    with pytest.raises(error):
        call_by_path(llm, path)


def test_probes_run_concurrently_and_the_answer_waits_only_for_the_reference(
    server: FakeLLMServer,
) -> None:
    """Both candidates are held on the server until released, which happens only after
    invoke() returned: the answer did not wait for them, and both were in flight at once."""
    release = threading.Event()
    started = {MINI: threading.Event(), HAIKU: threading.Event()}

    def held(name: str):
        async def respond(prompt):
            started[name].set()
            while not release.is_set():
                await asyncio.sleep(0.01)
            return "ok"

        return respond

    server.models.update({REF: Behaviour("ok"), MINI: held(MINI), HAIKU: held(HAIKU)})
    llm = smart(server, candidates=[openai_model(server, MINI), anthropic_model(server, HAIKU)])
    message = llm.invoke("q")
    assert message.response_metadata["smart"]["probe"]
    assert all(event.wait(5.0) for event in started.values())  # side by side, both held
    assert llm.ledger().routes[MINI].probes == 0
    release.set()
    llm.flush()
    ledger = llm.ledger()
    assert ledger.routes[MINI].probes == ledger.routes[HAIKU].probes == 1


async def test_async_streaming_probes_are_recorded(server: FakeLLMServer) -> None:
    llm = smart(server)
    chunks = [c async for c in llm.astream("q")]
    await llm.aflush()
    assert sum("smart" in c.response_metadata for c in chunks) == 1
    ledger = llm.ledger()
    assert ledger.routes[MINI].probes == ledger.routes[HAIKU].probes == 1
    assert ledger.routes[HAIKU].agreements == 1
    assert not any(r.stream for r in server.requests if r.model != REF)  # probes do not stream


class Ticket(BaseModel):
    """A support ticket's category and priority."""

    category: str
    priority: int


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output_agrees_across_providers(server: FakeLLMServer, method: str) -> None:
    for name in (REF, MINI, HAIKU):
        server.models.pop(name)  # echo: answers built from the schema and the prompt
    llm = smart(server)
    result = llm.with_structured_output(Ticket, method=method).invoke(
        "Ticket 'billing' with priority 2"
    )
    llm.flush()
    assert isinstance(result, Ticket)
    routes = llm.ledger().routes
    assert routes[MINI].agreements == routes[HAIKU].agreements == 1
    raw = llm.with_structured_output(Ticket, method=method, include_raw=True).invoke("Ticket 'x'")
    assert isinstance(raw["parsed"], Ticket) and raw["parsing_error"] is None
    assert raw["raw"].response_metadata["smart"]["route"] == REF
    bodies = {r.model: r.body for r in server.requests[:3]}
    if method == "json_schema":
        assert bodies[REF]["response_format"]["type"] == "json_schema"
        assert "output_config" in bodies[HAIKU]
    else:
        assert bodies[HAIKU]["tool_choice"]["type"] in ("any", "tool")


def test_tool_calls_agree_across_providers_and_disagree_on_other_arguments(
    server: FakeLLMServer,
) -> None:
    for name in (REF, MINI):
        server.models.pop(name)
    llm = smart(server)
    bound = llm.bind_tools([Ticket], tool_choice="any")
    message = bound.invoke("Ticket 'billing' with priority 2")
    llm.flush()
    assert message.tool_calls and message.tool_calls[0]["name"] == "Ticket"
    routes = llm.ledger().routes
    assert routes[MINI].agreements == 1  # same call, same canonical arguments
    assert routes[HAIKU].agreements == 0  # answered text ("ok") instead of the call
