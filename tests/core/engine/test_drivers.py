"""The drivers of the serving flow against a real SmartRouter with a memory store: the streaming
drivers relay chunks, hold back the last one for the certificate, fall back while the user has
seen nothing, and count (not retry) a failure after part of the answer was relayed."""

from __future__ import annotations

import asyncio

import pytest

from smart_core import Answer, SmartConfig, SmartRouter
from smart_core.engine.drivers import Calls
from smart_core.policy import keys as K


def _router(**kw) -> SmartRouter:
    config = SmartConfig(
        task="t",
        epsilon=0.1,
        reference="gpt-4o",
        candidates=["gpt-4o-mini"],
        audit_rate=0.0,
        expected_requests=100_000,
        **kw,
    )
    return SmartRouter(config, seed=1, wait_for_probes=True)


def _cost(model: str) -> float:
    return 1.0 if model == "gpt-4o" else 0.01


def _stream_calls(
    streams: dict[str, list], shows=lambda c: True, probed: str | None = None
) -> Calls:
    def stream(model: str):
        for item in streams[model]:
            if isinstance(item, BaseException):
                raise item
            yield item

    def probe(model: str) -> Answer:
        if probed is not None:
            return Answer(probed, model=model, cost=_cost(model))
        text = "".join(c for c in streams[model] if isinstance(c, str))
        return Answer(text, model=model, cost=_cost(model))

    return Calls(
        call=stream,
        probe=probe,
        streamed=lambda model, chunks: (
            Answer("".join(chunks), model=model, cost=_cost(model)) if chunks else None
        ),
        shows=shows,
    )


def test_a_stream_is_relayed_with_the_last_chunk_carrying_the_routed_answer():
    router = _router()
    out = list(
        router.serve_stream(
            _stream_calls({"gpt-4o": ["a", "b", "c"], "gpt-4o-mini": ["a", "b", "c"]})
        )
    )
    assert [o.chunk for o in out] == ["a", "b", "c"]
    assert [o.routed is None for o in out] == [True, True, False]
    assert out[-1].routed.answer.text == "abc"
    assert router.store.read("t")[K.REQUESTS] == 1


def test_a_failure_before_anything_was_relayed_falls_back():
    router = _router()
    # The first decisions probe; serve until one routes to the candidate.
    streams = {"gpt-4o": ["x", "y"], "gpt-4o-mini": ["x", ConnectionResetError("cut")]}
    for _ in range(400):
        out = list(router.serve_stream(_stream_calls(streams, probed="xy")))
        if out[-1].routed.fallback:
            break
    else:
        raise AssertionError("the policy never routed to the agreeing candidate in 400 requests")
    assert [o.chunk for o in out] == ["x", "y"]
    assert router.store.read("t")[K.fallbacks("gpt-4o-mini")] >= 1


def test_a_failure_after_a_chunk_was_relayed_is_counted_and_raised():
    router = _router()
    streams = {"gpt-4o": ["a", "b", ConnectionResetError("cut"), "c"], "gpt-4o-mini": ["a"]}
    relayed = []
    with pytest.raises(ConnectionResetError, match="cut"):
        for o in router.serve_stream(_stream_calls(streams)):
            relayed.append(o.chunk)
    assert relayed == ["a"]
    assert router.store.read("t")[K.failures("gpt-4o")] == 1


def test_chunks_that_show_nothing_are_held_so_a_failure_there_still_raises_before_relay():
    router = _router()
    streams = {"gpt-4o": ["", "", ConnectionResetError("cut")], "gpt-4o-mini": ["a"]}
    relayed = []
    with pytest.raises(ConnectionResetError):
        for o in router.serve_stream(_stream_calls(streams, shows=bool)):
            relayed.append(o.chunk)
    assert relayed == []
    assert router.store.read("t").get(K.failures("gpt-4o"), 0.0) == 0.0


def test_an_empty_stream_records_no_answer():
    router = _router()
    out = list(router.serve_stream(_stream_calls({"gpt-4o": [], "gpt-4o-mini": []})))
    assert out == []
    assert router.store.read("t").get(K.ANSWERED, 0.0) == 0.0


def test_the_async_stream_driver_relays_the_same_way():
    router = _router()

    async def main():
        async def stream(model):
            for c in ["a", "b"]:
                yield c

        async def probe(model):
            return Answer("ab", model=model)

        calls = Calls(stream, probe, streamed=lambda m, ch: Answer("".join(ch), model=m))
        return [o async for o in router.aserve_stream(calls)]

    out = asyncio.run(main())
    assert [o.chunk for o in out] == ["a", "b"]
    assert out[-1].routed.answer.text == "ab"


def test_sync_and_async_serve_record_the_same_counters():
    def call(model):
        return Answer("same", model=model)

    async def acall(model):
        return Answer("same", model=model)

    sync_router, async_router = _router(), _router()
    for _ in range(50):
        sync_router.serve(Calls(call, call))

    async def main():
        for _ in range(50):
            await async_router.aserve(Calls(acall, acall))
        await async_router.aflush()

    asyncio.run(main())
    assert sync_router.store.read("t") == async_router.store.read("t")


def test_a_call_not_for_the_user_is_read_whole_and_never_relayed():
    """A route whose first step may still be rejected (a cascade's) yields Call(to_user=False):
    the streaming drivers read it whole and relay only the call that answers the user."""
    from smart_core.engine.drivers import Performer, stream_flow
    from smart_core.engine.effects import Call
    from smart_core.engine.flow import serve_flow
    from smart_core.engine.routes import ModelRoute, RouteTable

    class TwoStep(ModelRoute):
        def serve(self, ticket):
            first = yield Call(ticket, "gpt-4o-mini", to_user=False)
            assert first.text == "draft"
            return (yield Call(ticket, "gpt-4o"))

    router = _router()
    router.routes = RouteTable(TwoStep("gpt-4o"), [ModelRoute("gpt-4o-mini")])
    calls = _stream_calls({"gpt-4o": ["fi", "nal"], "gpt-4o-mini": ["dr", "aft"]})
    out = list(stream_flow(serve_flow(router.routes), Performer(router, calls)))
    assert [o.chunk for o in out] == ["fi", "nal"]
    assert out[-1].routed.answer.text == "final"
