"""``smart serve`` with an answer cache: the official openai SDK against the proxy, which routes
through SMART to the local fake server. The candidate is down (every call fails and falls back
to the reference, then it cools down), so every answer a client gets is the reference's. Three
tenants x two users ask the same and paraphrased questions, each user named in its system
message; every reference answer carries the number of the upstream call that made it, so an
answer served twice is one served from the cache, and an answer crossing tenants or users would
show. Repeats are served from the cache (route ``cache...``, no upstream call), streamed hits
arrive as chunks, tools and JSON answers are replayed intact, ``x-smart-cache: off`` skips the
cache, and /metrics counts hits and misses."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from smart_core.policy import keys as K
from smart_core.proxy.background import serving
from smart_core.proxy.settings import ServeSettings, TaskSettings
from smart_core.stores import open_store
from smart_core.testing import Behaviour, FakeLLMServer, Fault, Prompt, Reply, ToolCall

REF, MINI = "openai:gpt-4o", "openai:gpt-4o-mini"
SEMANTIC = "cache:semantic@0.8"
TENANTS, USERS = ["acme", "globex", "initech"], ["ann", "bob"]
QUESTIONS = ["What is my plan?", "When does my contract renew?"]
PARAPHRASES = [str.lower, lambda q: q.rstrip("?") + " ?"]
WEATHER = {
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


def normal(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower()).strip()


class Reference:
    """The reference model: names whoever the system message names and numbers its calls."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)

    def __call__(self, prompt: Prompt) -> Reply | str:
        n = next(self.numbers)
        if prompt.tools:
            return Reply(tool_calls=(ToolCall("get_weather", {"city": f"Paris #{n}"}),))
        if prompt.response_format is not None:
            return json.dumps({"answer": normal(prompt.last_user_text), "call": n})
        system = next((m.text for m in prompt.messages if m.role == "system"), "")
        return f"[{system}] {normal(prompt.last_user_text)} #{n}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def reference(upstream: FakeLLMServer) -> Iterator[Reference]:
    ref = Reference()
    down = Behaviour("I am not sure.", faults=[Fault("server_error")])
    upstream.models = {"gpt-4o": ref, "gpt-4o-mini": down}
    upstream.reset()
    yield ref


def seeded_store(tmp_path: Any, routes: tuple[str, ...] = (), n: int = 3000) -> str:
    """A store in which the candidate agreed on none of ``n`` probes and was dropped from
    profiling, and each of ``routes`` agreed on all of them: the mix keeps to the reference (and
    those routes) and never probes the candidate again (a probe now and then, drawn at random,
    made the upstream call counts below flaky). How the bounds get there is the policy's
    business; here serving is tested."""
    url = f"sqlite:///{tmp_path / 'smart.db'}"
    inc = {K.REQUESTS: n, K.PROBES: n, K.routed(REF): n, K.probes_of(MINI): n}
    inc[K.dropped(MINI)] = 1.0
    inc |= {K.calls(REF): n, K.call_cost(REF): n * 0.0035}
    for route in routes:
        inc |= {K.probes_of(route): n, K.agreements(route): n, K.calls(route): n}
        inc[K.call_cost(route)] = 0.0
    store = open_store(url)
    store.add("default", inc)
    store.close()
    return url


def settings(upstream: FakeLLMServer, store: str, **task: Any) -> ServeSettings:
    base = {"name": "default", "reference": REF, "candidates": [MINI], "epsilon": 0.1}
    base["expected_requests"] = 3100  # few left after the seeded ones: profiling is done
    return ServeSettings(
        tasks=[TaskSettings(**{**base, **task})],
        store=store,
        base_urls={"openai": upstream.openai_base_url},
        max_retries=0,
    )


def client(base_url: str, tenant: str | None = None, user: str | None = None) -> openai.OpenAI:
    headers = {}
    if tenant is not None:
        headers["x-smart-tenant"] = tenant
    if user is not None:
        headers["x-smart-user"] = user
    return openai.OpenAI(base_url=base_url, api_key="k", default_headers=headers)


def ask(tenant: str, user: str, question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": f"You help {user} of {tenant}."},
        {"role": "user", "content": question},
    ]


def chat_calls(upstream: FakeLLMServer) -> int:
    """Answers upstream gave: the reference's calls. The candidate always fails (and falls back
    to the reference); the mix still sends it its share of epsilon now and then, at random, so
    counting its calls made these counts flaky."""
    return upstream.calls("gpt-4o")


def test_repeats_are_served_from_the_cache_and_no_answer_crosses_tenants_or_users(
    upstream, reference, tmp_path
):
    app = settings(upstream, seeded_store(tmp_path), cache="exact").build()
    first: dict[tuple[str, str, str], str] = {}
    routes: Counter = Counter()
    requests = 0
    with serving(app) as base_url:
        for _ in range(3):
            for tenant in TENANTS:
                for user in USERS:
                    llm = client(base_url, tenant, user)
                    for q in QUESTIONS:
                        raw = llm.chat.completions.with_raw_response.create(
                            model="default", messages=ask(tenant, user, q)
                        )
                        resp, requests = raw.parse(), requests + 1
                        text = resp.choices[0].message.content
                        assert text.startswith(f"[You help {user} of {tenant}.] {normal(q)} #")
                        assert first.setdefault((tenant, user, q), text) == text
                        route = resp.model_extra["smart"]["route"]
                        assert raw.headers["x-smart-route"] == route == resp.model
                        routes[route] += 1
                        if route == "cache:exact":
                            assert resp.model_extra["smart"]["cost"] == 0
                            assert resp.usage.total_tokens == 0
        scraped = httpx.get(base_url.removesuffix("/v1") + "/metrics").text
    assert len(set(first.values())) == len(TENANTS) * len(USERS) * len(QUESTIONS)
    assert routes["cache:exact"] == requests - len(first)  # every repeat, none of the firsts
    assert upstream.calls("gpt-4o") == len(first) and chat_calls(upstream) < requests
    assert f'smart_cache_hits_total{{task="default"}} {requests - len(first)}.0' in scraped
    assert f'smart_cache_misses_total{{task="default"}} {len(first)}.0' in scraped


def test_identical_requests_of_other_tenants_and_users_are_answered_afresh(
    upstream, reference, tmp_path
):
    """The same body from every namespace: a shared task answers once per tenant (whichever
    user asks), a per-user task once per (tenant, user); the body's ``user`` field names the
    user when no header does, and a per-user request naming no user never uses the cache."""
    body = [{"role": "user", "content": "What is my plan?"}]
    shared = settings(upstream, seeded_store(tmp_path), cache="exact").build()
    with serving(shared) as base_url:
        answers = {
            (t, u): client(base_url, t, u).chat.completions.create(model="m", messages=body)
            for _ in range(2)
            for t in TENANTS
            for u in USERS
        }
    texts = {k: a.choices[0].message.content for k, a in answers.items()}
    for t in TENANTS:
        assert texts[(t, "ann")] == texts[(t, "bob")]
    assert len(set(texts.values())) == len(TENANTS)
    assert upstream.calls("gpt-4o") == len(TENANTS)

    upstream.reset()
    per_user = settings(
        upstream, seeded_store(tmp_path / "p"), cache="exact", cache_answers="per_user"
    ).build()
    with serving(per_user) as base_url:
        llm = client(base_url, "acme")
        by_field = [
            llm.chat.completions.create(model="m", messages=body, user=u).choices[0]
            for u in ("ann", "bob", "ann", "bob")
        ]
        by_header = client(base_url, "acme", "ann").chat.completions.create(
            model="m", messages=body
        )
        anonymous = [llm.chat.completions.create(model="m", messages=body) for _ in range(2)]
    contents = [c.message.content for c in by_field]
    assert contents[0] == contents[2] != contents[1] == contents[3]
    assert by_header.choices[0].message.content == contents[0]  # header or field: one user
    assert {a.model_extra["smart"]["route"] for a in anonymous} == {REF}
    assert anonymous[0].choices[0].message.content != anonymous[1].choices[0].message.content
    assert upstream.calls("gpt-4o") == 2 + 2


def test_a_streamed_hit_and_the_opt_out_header(upstream, reference, tmp_path):
    app = settings(upstream, seeded_store(tmp_path), cache="exact").build()
    msgs = ask("acme", "ann", "What is my plan?")
    with serving(app) as base_url:
        llm = client(base_url, "acme", "ann")
        whole = llm.chat.completions.create(model="default", messages=msgs)
        calls = chat_calls(upstream)
        with llm.chat.completions.with_streaming_response.create(
            model="default", messages=msgs, stream=True
        ) as raw:
            assert raw.headers["x-smart-route"] == "cache:exact"
            chunks = list(raw.parse())
        assert chat_calls(upstream) == calls  # the stream came from the cache
        text = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        assert "".join(text) == whole.choices[0].message.content
        assert sum(bool(t) for t in text) > 3  # word by word, not one chunk
        assert chunks[-1].model_extra["smart"]["route"] == "cache:exact"
        assert all("smart" not in c.model_extra for c in chunks[:-1])
        assert chunks[-1].usage.total_tokens == 0
        finish = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert finish[-1] == "stop"

        off = llm.chat.completions.create(
            model="default", messages=msgs, extra_headers={"x-smart-cache": "off"}
        )
        assert off.model_extra["smart"]["route"] == REF
        assert off.choices[0].message.content != whole.choices[0].message.content
        assert chat_calls(upstream) == calls + 1
        again = llm.chat.completions.create(model="default", messages=msgs)
        assert again.choices[0].message.content == whole.choices[0].message.content
        with pytest.raises(openai.BadRequestError, match="x-smart-cache"):
            llm.chat.completions.create(
                model="default", messages=msgs, extra_headers={"x-smart-cache": "maybe"}
            )


def test_a_streamed_answer_is_stored_and_a_whole_request_is_served_it(
    upstream, reference, tmp_path
):
    app = settings(upstream, seeded_store(tmp_path), cache="exact").build()
    msgs = ask("acme", "bob", "When does my contract renew?")
    with serving(app) as base_url:
        llm = client(base_url, "acme", "bob")
        chunks = list(llm.chat.completions.create(model="default", messages=msgs, stream=True))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].model_extra["smart"]["route"] == REF
        again = llm.chat.completions.create(model="default", messages=msgs)
    assert again.model_extra["smart"]["route"] == "cache:exact"
    assert again.choices[0].message.content == streamed
    assert again.choices[0].finish_reason == "stop"


def test_tool_calls_and_json_answers_are_replayed_intact(upstream, reference, tmp_path):
    app = settings(upstream, seeded_store(tmp_path), cache="exact").build()
    msgs = [{"role": "user", "content": "Weather in 'Paris'?"}]
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "Plan",
            "schema": {"type": "object", "properties": {"answer": {"type": "string"}}},
        },
    }
    with serving(app) as base_url:
        llm = client(base_url, "acme")

        def tools(**kw: Any) -> Any:
            return llm.chat.completions.create(
                model="default", messages=msgs, tools=[WEATHER], tool_choice="required", **kw
            )

        first, hit = tools(), tools()
        chunks = list(tools(stream=True))
        plan = [llm.chat.completions.create(model="d", messages=msgs, response_format=schema)]
        plan.append(llm.chat.completions.create(model="d", messages=msgs, response_format=schema))
    assert upstream.calls("gpt-4o") == 2  # one tool answer, one JSON answer
    assert hit.model_extra["smart"]["route"] == "cache:exact"
    assert hit.choices[0].finish_reason == first.choices[0].finish_reason == "tool_calls"
    assert hit.choices[0].message.tool_calls == first.choices[0].message.tool_calls
    assert json.loads(hit.choices[0].message.tool_calls[0].function.arguments) == {
        "city": "Paris #1"
    }
    streamed = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(tc.id, tc.function.name, tc.function.arguments) for tc in streamed] == [
        (call.id, call.function.name, call.function.arguments)
        for call in first.choices[0].message.tool_calls
    ]
    assert plan[1].model_extra["smart"]["route"] == "cache:exact"
    assert json.loads(plan[1].choices[0].message.content) == {
        "answer": "weather in paris",
        "call": 2,
    }
    assert plan[1].choices[0].message.content == plan[0].choices[0].message.content


@pytest.mark.parametrize("embedding", [None, "openai:text-embedding-3-small"])
def test_semantic_paraphrases_are_served_within_their_namespace(
    upstream, reference, tmp_path, embedding
):
    """With the offline embedder, and with an upstream embedding model (the fake server's
    /v1/embeddings) through the openai SDK."""
    app = settings(
        upstream,
        seeded_store(tmp_path, routes=(SEMANTIC,)),
        cache="semantic",
        cache_similarities=[0.8],
        embedding=embedding,
    ).build()
    first: dict[tuple[str, str, str], str] = {}
    requests = hits = audited = 0
    with serving(app) as base_url:
        for spell in [str, *PARAPHRASES]:
            for tenant in TENANTS:
                for user in USERS:
                    llm = client(base_url, tenant, user)
                    for q in QUESTIONS:
                        resp = llm.chat.completions.create(
                            model="default", messages=ask(tenant, user, spell(q))
                        )
                        requests += 1
                        text = resp.choices[0].message.content
                        assert text.startswith(f"[You help {user} of {tenant}.] {normal(q)} #")
                        if spell is not str and resp.model_extra["smart"]["probe"]:
                            audited += 1  # see below
                        elif first.setdefault((tenant, user, q), text) == text and spell is not str:
                            hits += 1
                            assert resp.model_extra["smart"]["route"].startswith("cache")
                            assert resp.model_extra["smart"]["cost"] == 0
        scraped = httpx.get(base_url.removesuffix("/v1") + "/metrics").text
    # Each namespace's first spelling is answered by the reference; most paraphrases are hits,
    # but for those the policy audits. This reference numbers its answers, so an audited hit
    # always differs from the reference's fresh answer, and the drift detector then audits more
    # (a burst of a dozen audits in about one run in twenty).
    assert hits + audited >= 18 and hits > 0
    assert upstream.calls("gpt-4o") <= requests - hits < requests
    counted = re.search(r'smart_cache_hits_total\{task="default"\} ([\d.]+)', scraped)
    assert counted is not None and float(counted.group(1)) >= hits
    if embedding is not None:  # one embedding per request, at least
        assert upstream.calls("text-embedding-3-small") >= requests


def test_cache_settings_reach_the_config_and_bad_values_name_the_field(upstream, tmp_path):
    store = f"sqlite:///{tmp_path / 'smart.db'}"
    configs = settings(
        upstream, store, cache="semantic", cache_answers="per_user", cache_similarities=[0.9]
    ).configs()
    config = configs["default"]
    assert (config.cache, config.cache_answers, config.cache_similarities) == (
        "semantic",
        "per_user",
        (0.9,),
    )
    roundtrip = ServeSettings.from_json(settings(upstream, store, cache="exact").to_json())
    assert roundtrip.configs()["default"].cache == "exact"
    with pytest.raises(ValueError, match=r"task 'default'.*cache"):
        settings(upstream, store, cache="sometimes").configs()
    with pytest.raises(ValueError, match=r"embedding .* only by the semantic cache"):
        settings(upstream, store, cache="exact", embedding="openai:e").configs()
    with pytest.raises(ValueError, match="only OpenAI-compatible embedding models"):
        settings(upstream, store, cache="semantic", embedding="anthropic:e").build()


def test_two_workers_on_one_store_serve_each_others_exact_hits(upstream, reference, tmp_path):
    """Two apps on one SQLite store, as two uvicorn workers: an answer one stored is the other's
    exact hit, in the same namespace only."""
    store = seeded_store(tmp_path)
    msgs = ask("acme", "ann", "What is my plan?")
    with (
        serving(settings(upstream, store, cache="exact").build()) as one,
        serving(settings(upstream, store, cache="exact").build()) as two,
    ):
        first = client(one, "acme", "ann").chat.completions.create(model="d", messages=msgs)
        hit = client(two, "acme", "ann").chat.completions.create(model="d", messages=msgs)
        other = client(two, "globex", "ann").chat.completions.create(model="d", messages=msgs)
    assert hit.model_extra["smart"]["route"] == "cache:exact"
    assert hit.choices[0].message.content == first.choices[0].message.content
    assert other.model_extra["smart"]["route"] != "cache:exact"
    assert other.choices[0].message.content != first.choices[0].message.content
