"""Providers: spec parsing, keys kept secret, usage normalisation, errors that say what to do."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from smart_core import Answer, ConfigError
from smart_core.providers.sdk import (
    AnthropicProvider,
    OpenAIProvider,
    ProviderError,
    anthropic_usage,
    make_provider,
    openai_usage,
    parse_model_spec,
)
from smart_core.task.usage import Usage

SECRET = "sk-test-0123456789-do-not-show"


def test_parse_model_spec():
    spec = parse_model_spec(" openai:gpt-4o-mini ")
    assert (spec.provider, spec.model, spec.name) == ("openai", "gpt-4o-mini", "openai:gpt-4o-mini")
    assert parse_model_spec("Anthropic:claude-3-5-haiku-latest").provider == "anthropic"


@pytest.mark.parametrize("bad", ["gpt-4o", "openai:", ":gpt-4o", ""])
def test_parse_model_spec_errors_name_the_field_and_fix(bad):
    with pytest.raises(ConfigError, match=r"--reference: .*PROVIDER:MODEL.*openai:gpt-4o-mini"):
        parse_model_spec(bad, field="--reference")


def test_unknown_provider():
    with pytest.raises(ConfigError, match=r"--candidates: unknown provider 'mistral'.*openai"):
        parse_model_spec("mistral:large", field="--candidates")


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        make_provider("openai:gpt-4o")
    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY"):
        make_provider("anthropic:claude-3-5-haiku-latest")
    # A base URL (a local server) needs no key.
    assert isinstance(
        make_provider("openai:gpt-4o", base_url="http://127.0.0.1:9/v1"), OpenAIProvider
    )


def test_key_never_in_repr_or_errors(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    p = make_provider("anthropic:claude-3-5-haiku-latest", base_url="http://127.0.0.1:9")
    assert isinstance(p, AnthropicProvider)
    assert SECRET not in repr(p) and SECRET not in str(vars(p).get("name"))

    async def boom(request):
        raise RuntimeError(f"upstream said: bad key {SECRET}")

    p._call = boom  # type: ignore[method-assign]
    import asyncio

    with pytest.raises(ProviderError) as info:
        asyncio.run(p("hi"))
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None and "***" in str(info.value)


def test_usage_conversion():
    u = SimpleNamespace(
        prompt_tokens=100,
        completion_tokens=7,
        prompt_tokens_details=SimpleNamespace(cached_tokens=40),
        completion_tokens_details=SimpleNamespace(reasoning_tokens=3),
    )
    assert openai_usage(u) == Usage(100, 7, 40, 0, 3)
    a = SimpleNamespace(
        input_tokens=10, output_tokens=5, cache_read_input_tokens=80, cache_creation_input_tokens=20
    )
    assert anthropic_usage(a) == Usage(110, 5, 80, 20)
    assert openai_usage(None) == Usage() == anthropic_usage(None)


def test_request_shapes():
    from smart_core.providers.sdk import _messages

    assert _messages("hi") == (None, [{"role": "user", "content": "hi"}])
    sys_, msgs = _messages(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}]
    )
    assert sys_ == "be brief" and msgs == [{"role": "user", "content": "x"}]
    assert _messages({"prompt": "p", "system": "s"}) == ("s", [{"role": "user", "content": "p"}])
    with pytest.raises(TypeError):
        _messages(42)


def test_provider_is_a_router_endpoint(monkeypatch):
    """Providers plug into SmartRouter as endpoints and their answers are priced by the table."""
    import asyncio

    from smart_core import SmartConfig, SmartRouter

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    ref = make_provider("openai:gpt-4o", base_url="http://127.0.0.1:9/v1")
    cand = make_provider("openai:gpt-4o-mini", base_url="http://127.0.0.1:9/v1")

    async def fake(self, request):
        return Answer(text="ok", model=self.name, usage=Usage(1000, 10))

    monkeypatch.setattr(OpenAIProvider, "_call", fake)
    config = SmartConfig(epsilon=0.05, reference=ref.name, candidates=[cand.name])
    router = SmartRouter(config, {ref.name: ref, cand.name: cand}, wait_for_probes=True)
    routed = asyncio.run(router.arun("hello"))
    assert routed.answer.text == "ok"
    assert routed.cost == pytest.approx((1000 * 2.5 + 10 * 10.0) / 1e6)


# -- against the local server ---------------------------------------------------------------------


def _server(**models):
    from smart_core.testing import FakeLLMServer

    return FakeLLMServer(models)


def test_openai_and_anthropic_round_trip_with_usage_and_cost(monkeypatch):
    import asyncio

    from smart_core import PriceTable

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with _server(**{"gpt-4o-mini": "positive", "claude-haiku-4-5": "negative"}) as server:
        oa = make_provider("openai:gpt-4o-mini", base_url=server.openai_base_url)
        an = make_provider("anthropic:claude-haiku-4-5", base_url=server.anthropic_base_url)

        async def both():
            try:
                return await oa({"prompt": "Review: great", "system": "Label it"}), await an(
                    [{"role": "system", "content": "Label it"}, {"role": "user", "content": "meh"}]
                )
            finally:
                await oa.aclose()
                await an.aclose()

        a, b = asyncio.run(both())
        bodies = [r.body for r in server.requests]
    assert (a.text, a.model, b.text, b.model) == (
        "positive",
        "openai:gpt-4o-mini",
        "negative",
        "anthropic:claude-haiku-4-5",
    )
    assert a.usage.input_tokens > 0 and a.usage.output_tokens > 0 and b.usage.input_tokens > 0
    assert bodies[0]["messages"][0] == {"role": "system", "content": "Label it"}
    assert bodies[1]["system"] == "Label it" and bodies[1]["messages"][0]["role"] == "user"
    assert PriceTable().cost(a.model, a.usage) > 0


@pytest.mark.slow
def test_retries_honour_retry_after_and_give_up_with_a_clear_error():
    import asyncio
    import time

    from smart_core.testing import Behaviour, Fault

    slow_429 = Behaviour("ok", faults=[Fault("rate_limit", calls=[1], retry_after=0.6)])
    always_500 = Behaviour("ok", faults=[Fault("server_error")])
    with _server(**{"gpt-4o": slow_429, "gpt-4o-mini": always_500}) as server:
        ok = make_provider("openai:gpt-4o", base_url=server.openai_base_url, api_key=SECRET)
        bad = make_provider(
            "openai:gpt-4o-mini", base_url=server.openai_base_url, api_key=SECRET, max_retries=2
        )

        async def go():
            t0 = time.monotonic()
            answer = await ok("hi")
            waited = time.monotonic() - t0
            try:
                await bad("hi")
            except ProviderError as exc:
                return answer, waited, exc
            finally:
                await ok.aclose()
                await bad.aclose()
            raise AssertionError("expected a ProviderError")

        answer, waited, exc = asyncio.run(go())
        statuses = [(r.model, r.status) for r in server.requests]
    assert answer.text == "ok" and waited >= 0.6  # waited as long as retry-after said
    assert statuses[:2] == [("gpt-4o", 429), ("gpt-4o", 200)]
    assert statuses.count(("gpt-4o-mini", 500)) == 3  # the call and 2 retries
    assert "openai:gpt-4o-mini" in str(exc) and "HTTP 500" in str(exc) and SECRET not in str(exc)


@pytest.mark.slow
def test_timed_out_call_is_retried():
    import asyncio

    from smart_core.testing import Behaviour, Fault

    hang = Behaviour("ok", faults=[Fault("timeout", calls=[1], hang=2.0)])
    with _server(**{"gpt-4o": hang}) as server:
        p = make_provider("openai:gpt-4o", base_url=server.openai_base_url, timeout=0.3)

        async def go():
            try:
                return await p("hi")
            finally:
                await p.aclose()

        answer = asyncio.run(go())
    assert answer.text == "ok"
