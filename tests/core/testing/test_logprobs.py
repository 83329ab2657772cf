"""Token logprobs on the fake server: OpenAI's format through the official SDK, deterministic,
and summing to the confidence the responder set."""

from __future__ import annotations

import math
import random

import openai
import pytest

from smart_core.testing import FakeLLMServer, Reply
from smart_core.testing._logprobs import default_confidence, token_logprobs

MESSAGES = [{"role": "user", "content": "Is it a bug?"}]


@pytest.fixture(scope="module")
def server():
    models = {
        "sure": lambda prompt: Reply("The answer is yes.", confidence=0.98),
        "unsure": lambda prompt: Reply("The answer is no.", confidence=0.30),
        "plain": "maybe so",
    }
    with FakeLLMServer(models) as running:
        yield running


@pytest.fixture
def client(server: FakeLLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


def _total(content) -> float:
    return math.exp(sum(t.logprob for t in content))


def test_logprobs_sum_to_the_replys_confidence(client: openai.OpenAI) -> None:
    for model, p in (("sure", 0.98), ("unsure", 0.30)):
        resp = client.chat.completions.create(model=model, messages=MESSAGES, logprobs=True)
        content = resp.choices[0].logprobs.content
        assert "".join(t.token for t in content) == resp.choices[0].message.content
        assert _total(content) == pytest.approx(p)
        assert all(t.bytes == list(t.token.encode()) for t in content)
        assert all(t.top_logprobs == [] for t in content)


def test_no_logprobs_unless_asked(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="sure", messages=MESSAGES)
    assert resp.choices[0].logprobs is None


def test_default_confidence_is_fixed_by_the_text(client: openai.OpenAI) -> None:
    one = client.chat.completions.create(model="plain", messages=MESSAGES, logprobs=True)
    two = client.chat.completions.create(model="plain", messages=MESSAGES, logprobs=True)
    p = _total(one.choices[0].logprobs.content)
    assert p == pytest.approx(_total(two.choices[0].logprobs.content))
    assert p == pytest.approx(default_confidence("maybe so"))
    assert 0.5 <= p < 1.0


def test_top_logprobs_hold_the_chosen_token_and_less_likely_ones(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="unsure", messages=MESSAGES, logprobs=True, top_logprobs=3
    )
    for token in resp.choices[0].logprobs.content:
        top = token.top_logprobs
        assert len(top) == 3
        assert token.token in [t.token for t in top]
        assert [t.logprob for t in top] == sorted((t.logprob for t in top), reverse=True)
        assert sum(math.exp(t.logprob) for t in top) <= 1.0 + 1e-9


def test_streamed_chunks_carry_their_tokens_logprobs(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="unsure", messages=MESSAGES, logprobs=True, stream=True
    )
    text, tokens = "", []
    for chunk in stream:
        choice = chunk.choices[0]
        if choice.delta.content:
            text += choice.delta.content
            assert [t.token for t in choice.logprobs.content] == [choice.delta.content]
            tokens += choice.logprobs.content
    assert text == "The answer is no."
    assert _total(tokens) == pytest.approx(0.30)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"top_logprobs": 2}, "'logprobs' must be set to true"),
        ({"logprobs": True, "top_logprobs": 21}, "from 0 to 20"),
        ({"logprobs": "yes"}, "'logprobs' must be a boolean"),
    ],
)
def test_bad_logprobs_options_are_refused_like_openai(
    client: openai.OpenAI, extra: dict, says: str
) -> None:
    with pytest.raises(openai.BadRequestError, match=says):
        client.chat.completions.create(model="sure", messages=MESSAGES, **extra)


def test_a_confidence_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Reply\.confidence"):
        Reply("x", confidence=1.5)


@pytest.mark.parametrize("seed", range(200))
def test_token_logprobs_sum_to_log_confidence(seed: int) -> None:
    rng = random.Random(seed)
    text = "".join(rng.choice("ab c.") for _ in range(rng.randint(1, 40))) + "z"
    p = rng.choice([1.0, rng.uniform(1e-6, 1.0), 1e-6])
    top = rng.randint(0, 20)
    entries = token_logprobs(text, p, top)
    assert "".join(e["token"] for e in entries) == text
    assert math.exp(sum(e["logprob"] for e in entries)) == pytest.approx(p, rel=1e-9)
    assert all(len(e["top_logprobs"]) == top for e in entries)
