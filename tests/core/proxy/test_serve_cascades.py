"""Cascades behind ``smart serve``: declared per task, certified like a model, and handed the
request so scorers that read it judge the same request a probe judged."""

from __future__ import annotations

import openai
import pytest

from smart_core.policy import keys as K
from smart_core.proxy.background import serving
from smart_core.proxy.settings import ServeSettings, TaskSettings
from smart_core.stores import open_store
from smart_core.task.cascades import Cascade, CascadeStep
from smart_core.testing import Behaviour, FakeLLMServer

REF, MINI = "openai:gpt-4o", "openai:gpt-4o-mini"


@pytest.fixture(scope="module")
def upstream():
    with FakeLLMServer() as server:
        server.models = {"gpt-4o": Behaviour("yes"), "gpt-4o-mini": Behaviour("yes")}
        yield server


def _trusted(url: str, route: str, n: int = 3000) -> None:
    """A store in which ``route`` agreed on all of ``n`` probes and the plain candidate on none
    (and was dropped): the mix sends nearly everything to the cascade. Nearly: the plain
    candidate is cheaper, so the mix spends on it what slack the cascade's bound leaves above
    ``1 - epsilon`` (about a tenth of the requests at epsilon 0.1, under 1 % at 0.01)."""
    inc = {K.REQUESTS: n, K.PROBES: n, K.routed(REF): n, K.probes_of(MINI): n}
    inc |= {K.dropped(MINI): 1.0, K.calls(REF): n, K.call_cost(REF): n * 0.0035}
    inc |= {K.probes_of(route): n, K.agreements(route): n, K.calls(route): n}
    inc[K.call_cost(route)] = n * 0.0002
    store = open_store(url)
    store.add("default", inc)
    store.close()


def _settings(base_url: str, store: str, cascades) -> ServeSettings:
    task = TaskSettings(
        name="default",
        reference=REF,
        candidates=[MINI],
        epsilon=0.01,
        comparator="choice:yes,no",
        expected_requests=3100,
        cascades=cascades,
    )
    return ServeSettings(tasks=[task], store=store, base_urls={"openai": base_url}, max_retries=0)


def test_a_declared_cascade_answers_and_its_scorer_reads_the_request(upstream, tmp_path):
    seen: list = []

    def asks_yes_no(request, answer) -> float:
        seen.append(request)
        return 1.0

    cascade = Cascade([CascadeStep(MINI, asks_yes_no)])
    url = f"sqlite:///{tmp_path / 'smart.db'}"
    _trusted(url, cascade.name)
    upstream.reset()
    messages = [{"role": "user", "content": "Is water wet? Answer yes or no."}]
    with serving(_settings(upstream.openai_base_url, url, [cascade]).build()) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="k")
        routes = [
            client.chat.completions.create(model="x", messages=messages).model_extra["smart"][
                "route"
            ]
            for _ in range(10)
        ]
        streamed = client.chat.completions.create(model="x", messages=messages, stream=True)
        chunks = list(streamed)
    assert routes.count(cascade.name) >= 8
    assert chunks[-1].model_extra["smart"]["route"] in (cascade.name, REF, MINI)
    assert seen and all(r == messages for r in seen)  # the request as the client sent it
    assert upstream.calls("gpt-4o-mini") >= 8 and upstream.calls("gpt-4o") <= 3


def test_cascades_in_a_toml_task_table_are_checked_against_its_candidates(tmp_path):
    from smart_core.errors import ConfigError

    url, store = "http://127.0.0.1:9/v1", f"sqlite:///{tmp_path / 's.db'}"
    bad = [{"steps": [{"model": "gpt-4o-mini", "scorer": "label:yes"}]}]  # no provider
    with pytest.raises(ConfigError, match=r"task 'default'.*not a candidate"):
        _settings(url, store, bad).configs()
    good = [{"steps": [{"model": MINI, "scorer": "label:yes"}]}]
    config = _settings(url, store, good).configs()
    assert [c.name for c in config["default"].cascade_list()] == [
        "cascade:openai:gpt-4o-mini[label=yes]>ref"
    ]
    # The TOML form travels to the workers as JSON.
    again = ServeSettings.from_json(_settings(url, store, good).to_json())
    assert again.tasks[0].cascades == good
