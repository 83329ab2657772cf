"""SmartChatModel over in-process fake models: construction errors, task selection, the
certificate, usage and tracing, probes, fallbacks, tools and structured output."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import warnings
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.load import dumpd
from langchain_core.messages import AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tracers.context import collect_runs
from langchain_fakes import FAKE_PRICES, FakeChat, call_by_path
from pydantic import BaseModel, SecretStr

from smart_core import ChoiceMatch, ConfigError, StoreError
from smart_langchain import MessageMatch, SmartChatModel


class ProviderDown(Exception):
    """Stands in for a provider SDK's own error type."""


def make(
    reference: FakeChat | None = None,
    *candidates: FakeChat,
    **settings: Any,
) -> SmartChatModel:
    reference = reference or FakeChat(model_name="fake-large")
    if not candidates:
        candidates = (FakeChat(model_name="fake-small"),)
    params: dict[str, Any] = {"epsilon": 0.2, "prices": FAKE_PRICES, "seed": 0}
    params.update(settings)
    return SmartChatModel(reference=reference, candidates=list(candidates), **params)


def warm(llm: SmartChatModel, task: str | None = None, n: int = 200) -> None:
    """Agreeing probes until the policy routes requests to the candidate."""
    config = {"metadata": {"smart_task": task}} if task else None
    routed = 0
    for i in range(n):
        smart = smart_of(llm.invoke(f"warm {i}", config=config))
        llm.flush()
        routed += smart["route"] == "fake-small"
        if routed >= 3:
            return
    raise AssertionError(f"the candidate was not adopted: {llm.ledger(task).summary()}")


def smart_of(message: Any) -> dict[str, Any]:
    return message.response_metadata["smart"]


# -- construction ----------------------------------------------------------------------------------


def test_model_names_come_from_the_inner_models() -> None:
    llm = make()
    assert list(llm.models) == ["fake-large", "fake-small"]
    assert llm.config.reference.name == "fake-large"
    assert isinstance(llm.config.comparator, MessageMatch)


def test_colliding_names_name_the_fields_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"candidates\[0\] and reference both call model"):
        make(FakeChat(model_name="fake-large"), FakeChat(model_name="fake-large"))


def test_a_model_without_price_names_the_field_and_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        make(None, FakeChat(model_name="my-model"))
    message = str(info.value)
    assert "candidates[0] (FakeChat.model_name = 'my-model')" in message
    assert "prices={'my-model': (1.0, 4.0)}" in message


def test_a_model_without_a_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="reference: cannot tell which model"):
        make(FakeChat(model_name=""))


def test_the_profile_is_what_every_inner_model_can_do() -> None:
    big = FakeChat(model_name="fake-large", profile={"max_input_tokens": 100, "tool_calling": True})
    small = FakeChat(
        model_name="fake-small", profile={"max_input_tokens": 50, "tool_calling": False}
    )
    assert make(big, small).profile == {"max_input_tokens": 50, "tool_calling": False}
    assert make(big, FakeChat(model_name="fake-small")).profile is None  # one is unknown


def test_any_smart_core_comparator_spec_is_accepted() -> None:
    llm = make(comparator="choice:yes,no")
    assert llm.config.comparator == ChoiceMatch(["yes", "no"])


def test_secrets_stay_out_of_serialised_models_and_metadata(tmp_path: Any) -> None:
    from langchain_openai import ChatOpenAI

    secret = "sk-very-secret-123"
    inner = ChatOpenAI(model="gpt-4o", api_key=SecretStr(secret), base_url="http://127.0.0.1:9")
    llm = SmartChatModel(
        reference=inner,
        candidates=[FakeChat(model_name="fake-small")],
        epsilon=0.1,
        prices=FAKE_PRICES,
        store=f"sqlite:///{tmp_path / 'smart.db'}",
    )
    assert secret not in json.dumps(dumpd(llm))
    assert secret not in repr(llm)
    assert secret not in json.dumps(llm._identifying_params)
    llm.close()
    assert secret.encode() not in (tmp_path / "smart.db").read_bytes()


def test_instances_sharing_a_sqlite_store_share_statistics(tmp_path: Any) -> None:
    store = f"sqlite:///{tmp_path / 'smart.db'}"
    first = make(store=store, task="shared")
    for i in range(3):
        first.invoke(f"q{i}")
    first.close()
    second = make(store=store, task="shared")
    ledger = second.ledger()
    assert (ledger.requests, ledger.routes["fake-small"].probes) == (3, 3)
    second.close()


# -- the answer and its certificate ----------------------------------------------------------------


def test_invoke_answers_with_the_certificate_and_the_answering_models_usage() -> None:
    llm = make()
    message = llm.invoke("hello there")
    smart = smart_of(message)
    assert smart["route"] == "fake-large" and smart["probe"] is True  # first requests probe
    assert message.response_metadata["model_name"] == "fake-large"
    assert message.usage_metadata["input_tokens"] == 2
    for key in ("task", "mix", "bound", "probes", "epsilon", "delta", "method", "request_id"):
        assert key in smart
    assert smart["epsilon"] == 0.2 and smart["cost"] > 0
    json.dumps(smart)  # JSON-ready


def test_routed_answers_name_the_candidate() -> None:
    llm = make()
    warm(llm)
    routes = {smart_of(llm.invoke(f"q{i}"))["route"] for i in range(20)}
    assert "fake-small" in routes
    message = next(m for m in (llm.invoke(f"r{i}") for i in range(20)) if not smart_of(m)["probe"])
    assert message.response_metadata["model_name"] == smart_of(message)["route"]


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_stream_carries_the_certificate_and_model_name_on_exactly_one_chunk(api: str) -> None:
    llm = make(FakeChat(model_name="fake-large", reply=lambda t: "one two three four"))
    chunks = list(llm.stream("hi")) if api == "sync" else [c async for c in llm.astream("hi")]
    assert len(chunks) >= 4
    assert sum("smart" in c.response_metadata for c in chunks) == 1
    assert sum("model_name" in c.response_metadata for c in chunks) == 1
    assert sum(c.usage_metadata is not None for c in chunks) == 1
    total: AIMessageChunk = chunks[0]
    for c in chunks[1:]:
        total = total + c
    assert total.content == "one two three four"
    assert total.response_metadata["model_name"] == "fake-large"
    assert total.response_metadata["smart"]["route"] == "fake-large"
    assert chunks[-1].chunk_position == "last"


def test_route_is_decided_before_the_first_token() -> None:
    llm = make()
    stream = llm.stream("hi")
    first = next(stream)
    assert first.content  # a token arrived; the request is already reserved
    assert llm.ledger().requests == 1
    list(stream)


# -- which task ------------------------------------------------------------------------------------


def _task_of_each_path(llm: SmartChatModel, config: dict[str, Any]) -> dict[str, str]:
    async def run_async() -> tuple[str, str]:
        a = await llm.ainvoke("x", config=config)
        s = [c async for c in llm.astream("x", config=config)]
        return smart_of(a)["task"], next(smart_of(c) for c in s if "smart" in c.response_metadata)[
            "task"
        ]

    out = {"invoke": smart_of(llm.invoke("x", config=config))["task"]}
    out["stream"] = next(
        smart_of(c) for c in llm.stream("x", config=config) if "smart" in c.response_metadata
    )["task"]
    out["ainvoke"], out["astream"] = asyncio.run(run_async())
    out["batch"] = smart_of(llm.batch(["x"], config=config)[0])["task"]
    out["with_config"] = smart_of(llm.with_config(config).invoke("x"))["task"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stream_events v3 is beta
        out["stream_events_v3"] = smart_of(
            llm.stream_events("x", config=config, version="v3").output
        )["task"]
    out["streaming_invoke"] = smart_of(
        llm.model_copy(update={"streaming": True}).invoke("x", config=config)
    )["task"]
    return out


def test_per_call_metadata_picks_the_task_on_every_path() -> None:
    llm = make(task="default-task")
    tasks = _task_of_each_path(llm, {"metadata": {"smart_task": "triage"}})
    assert set(tasks.values()) == {"triage"}, tasks
    assert llm.ledger("triage").requests == len(tasks)
    assert llm.ledger().requests == 0  # nothing went to the default task
    assert set(_task_of_each_path(llm, {}).values()) == {"default-task"}


def test_a_chain_passes_its_metadata_to_the_model() -> None:
    llm = make()
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm | StrOutputParser()
    assert chain.invoke({"q": "hi"}, config={"metadata": {"smart_task": "chain-task"}})
    assert [c for c in chain.stream({"q": "yo"}, config={"metadata": {"smart_task": "chain-task"}})]
    assert llm.ledger("chain-task").requests == 2


def test_a_bad_task_name_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigError, match="smart_task must be"):
        make().invoke("x", config={"metadata": {"smart_task": "no spaces allowed"}})


# -- usage and tracing -----------------------------------------------------------------------------


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts = 0
        self.ends = 0
        self.tokens: list[str] = []

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.starts += 1

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)

    def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
        self.ends += 1


@pytest.mark.parametrize("path", ["invoke", "stream", "ainvoke", "astream"])
def test_usage_is_counted_once_and_probes_leave_no_runs(path: str) -> None:
    llm = make(
        FakeChat(model_name="fake-large", reply=lambda t: "a b c"),
        FakeChat(model_name="fake-small", reply=lambda t: "a b c"),
    )
    recorder = Recorder()
    config = {"callbacks": [recorder]}

    async def run_async() -> None:
        if path == "ainvoke":
            await llm.ainvoke("one two", config=config)
        else:
            [c async for c in llm.astream("one two", config=config)]
        await llm.aflush()

    with get_usage_metadata_callback() as usage, collect_runs() as runs:
        if path == "invoke":
            llm.invoke("one two", config=config)
        elif path == "stream":
            list(llm.stream("one two", config=config))
        else:
            asyncio.run(run_async())
        llm.flush()
    # The probe ran (the candidate was called) but only the reference's usage is the user's.
    assert llm.models["fake-small"].calls == ["one two"]  # type: ignore[attr-defined]
    assert usage.usage_metadata == {
        "fake-large": {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}
    }
    assert recorder.starts == 1 and recorder.ends == 1
    assert len(runs.traced_runs) == 1, [r.name for r in runs.traced_runs]
    assert runs.traced_runs[0].name == "SmartChatModel"
    assert runs.traced_runs[0].child_runs == []
    assert llm.ledger().probe_candidate_spend > 0  # the probe's cost is SMART's to record


async def test_astream_events_streams_each_token_once() -> None:
    llm = make(FakeChat(model_name="fake-large", reply=lambda t: "x y z"))
    events = [e async for e in llm.astream_events("hi", version="v2")]
    starts = [e for e in events if e["event"] == "on_chat_model_start"]
    tokens = [e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream"]
    assert len(starts) == 1
    assert "".join(tokens) == "x y z"
    await llm.aflush()


# -- probes ----------------------------------------------------------------------------------------


def test_probes_run_beside_the_reference_and_do_not_delay_the_answer() -> None:
    """The candidate cannot finish before it is released, which happens only after invoke()
    returned: invoke waiting for it would deadlock (5 s) and find it finished; the probe is
    recorded once it is released."""
    release, finished = threading.Event(), threading.Event()

    def slow(text: str) -> str:
        release.wait(5.0)
        finished.set()
        return "ok"

    llm = make(
        FakeChat(model_name="fake-large", reply=lambda t: "ok"),
        FakeChat(model_name="fake-small", reply=slow),
    )
    message = llm.invoke("q")
    assert smart_of(message)["probe"] is True
    assert not finished.is_set()  # the answer came back while the candidate was still running
    assert llm.ledger().routes["fake-small"].probes == 0
    release.set()
    llm.flush()
    ledger = llm.ledger()
    assert ledger.routes["fake-small"].probes == 1
    assert ledger.routes["fake-small"].agreements == 1
    assert ledger.probe_candidate_spend > 0


async def test_async_probes_run_concurrently_and_are_recorded() -> None:
    llm = make(
        FakeChat(model_name="fake-large", reply=lambda t: "ok", delay=0.3),
        FakeChat(model_name="fake-small", reply=lambda t: "ok", delay=0.3),
        FakeChat(model_name="fake-mid", reply=lambda t: "no", delay=0.3),
    )
    start = time.perf_counter()
    await asyncio.gather(*(llm.ainvoke(f"q{i}") for i in range(5)))
    await llm.aflush()
    # 15 calls of 0.3 s: 4.5 s one after another, about 0.3 s all at once (generous margin
    # for a loaded machine).
    assert time.perf_counter() - start < 3.0
    ledger = llm.ledger()
    assert ledger.probes == 5
    assert (ledger.routes["fake-small"].agreements, ledger.routes["fake-mid"].agreements) == (5, 0)


def test_a_failing_probe_is_a_failure_not_a_disagreement() -> None:
    llm = make(None, FakeChat(model_name="fake-small", fail=ProviderDown("429")))
    llm.invoke("q")
    llm.flush()
    stats = llm.ledger().routes["fake-small"]
    assert (stats.probes, stats.agreements, stats.failures) == (0, 0, 1)


# -- errors and fallbacks --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["invoke", "stream", "ainvoke", "astream"])
def test_a_failing_routed_candidate_falls_back_to_the_reference(path: str) -> None:
    candidate = FakeChat(model_name="fake-small", reply=lambda t: "ok")
    llm = make(FakeChat(model_name="fake-large", reply=lambda t: "ok"), candidate)
    warm(llm)
    candidate.fail = ProviderDown("rate limited")
    answers = []
    for i in range(10):
        if path == "invoke":
            answers.append(llm.invoke(f"q{i}"))
        elif path == "ainvoke":
            answers.append(asyncio.run(llm.ainvoke(f"q{i}")))
        else:
            if path == "stream":
                chunks = list(llm.stream(f"q{i}"))
            else:

                async def collect(i: int = i) -> list[AIMessageChunk]:
                    return [c async for c in llm.astream(f"q{i}")]

                chunks = asyncio.run(collect())
            total = chunks[0]
            for c in chunks[1:]:
                total = total + c
            answers.append(total)
    fell_back = [m for m in answers if smart_of(m)["fallback"]]
    assert fell_back, "no request was routed to the candidate"
    for m in fell_back:
        assert m.text == "ok"
        assert smart_of(m)["route"] == "fake-large"
        assert m.response_metadata["model_name"] == "fake-large"
    stats = llm.ledger().routes["fake-small"]
    assert stats.fallbacks == len(fell_back)
    assert stats.failures >= stats.fallbacks  # plus audits whose candidate call failed
    assert stats.agreements == stats.probes  # failures are not disagreements


@pytest.mark.parametrize("path", ["invoke", "stream", "ainvoke", "astream"])
def test_a_failing_reference_raises_its_own_error(path: str) -> None:
    llm = make(FakeChat(model_name="fake-large", fail=ProviderDown("500")))

    with pytest.raises(ProviderDown):
        call_by_path(llm, path)


class _FailsAfterFirstChunk(FakeChat):
    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        chunks = list(super()._stream(messages, stop, run_manager, **kwargs))
        yield from chunks[:2]
        raise ProviderDown("connection dropped mid-stream")


def test_a_stream_failing_after_tokens_were_yielded_raises() -> None:
    candidate = _FailsAfterFirstChunk(model_name="fake-small", reply=lambda t: "ok fine then")
    llm = make(FakeChat(model_name="fake-large", reply=lambda t: "ok fine then"), candidate)
    warm(llm)
    raised = 0
    for i in range(10):
        try:
            list(llm.stream(f"q{i}"))
        except ProviderDown:
            raised += 1
    assert raised >= 1
    assert llm.ledger().routes["fake-small"].fallbacks == 0


# -- tools and structured output -------------------------------------------------------------------


class Weather(BaseModel):
    """Weather in a city."""

    city: str
    unit: str


def test_bind_tools_binds_every_inner_model_and_keeps_provider_options_out_of_the_call() -> None:
    reference = FakeChat(model_name="fake-large", tool_args=lambda t: {"city": t, "unit": "C"})
    candidate = FakeChat(model_name="fake-small", tool_args=lambda t: {"unit": "C", "city": t})
    llm = make(reference, candidate)
    bound = llm.bind_tools([Weather], tool_choice="any", strict=True)
    assert bound.kwargs["smart_tool_options"] == {"strict": True}  # type: ignore[attr-defined]
    assert "strict" not in bound.kwargs  # type: ignore[attr-defined]
    message = bound.invoke("Paris")
    llm.flush()
    assert message.tool_calls[0]["name"] == "Weather"
    assert message.tool_calls[0]["args"] == {"city": "Paris", "unit": "C"}
    for inner in (reference, candidate):
        kwargs = inner.call_kwargs[-1]
        assert kwargs["tools"][0]["function"]["name"] == "Weather"
        assert kwargs["tool_choice"] == "any" and kwargs["strict"] is True
    # Same calls, arguments in another order: an agreement.
    assert llm.ledger().routes["fake-small"].agreements == 1


def test_with_structured_output_by_function_calling_compares_canonically() -> None:
    reference = FakeChat(model_name="fake-large", tool_args=lambda t: {"city": t, "unit": "C"})
    candidate = FakeChat(model_name="fake-small", tool_args=lambda t: {"unit": "C", "city": t})
    other = FakeChat(model_name="fake-mid", tool_args=lambda t: {"city": t, "unit": "F"})
    llm = make(reference, candidate, other)
    result = llm.with_structured_output(Weather).invoke("Oslo")
    llm.flush()
    assert result == Weather(city="Oslo", unit="C")
    routes = llm.ledger().routes
    assert (routes["fake-small"].agreements, routes["fake-mid"].agreements) == (1, 0)


def test_model_kwarg_forces_an_inner_model_outside_the_ledger() -> None:
    llm = make()
    message = llm.invoke("q", model="fake-small")
    assert message.response_metadata["model_name"] == "fake-small"
    assert llm.ledger().requests == 0
    with pytest.raises(ValueError, match="not one of this SmartChatModel's models"):
        llm.invoke("q", model="gpt-unknown")


def test_native_structured_output_falls_back_to_function_calling_with_a_warning() -> None:
    reference = FakeChat(model_name="fake-large", tool_args=lambda t: {"city": t, "unit": "C"})
    llm = make(reference, FakeChat(model_name="fake-small"))
    with pytest.warns(UserWarning, match=r"\['fake-large', 'fake-small'\] cannot do it"):
        structured = llm.with_structured_output(Weather, method="json_schema")
    assert structured.invoke("Rome") == Weather(city="Rome", unit="C")
    with pytest.raises(ValueError, match="unknown method"):
        llm.with_structured_output(Weather, method="xml")


async def test_aflush_records_background_probes_and_aclose_closes_the_store() -> None:
    llm = make(None, FakeChat(model_name="fake-small", delay=0.2))
    await llm.ainvoke("q")
    assert llm.ledger().routes["fake-small"].probes == 0
    await llm.aflush()
    assert llm.ledger().routes["fake-small"].probes == 1
    await llm.aclose()
    with pytest.raises(StoreError):
        llm.ledger()
