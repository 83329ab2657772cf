"""The ``fake_llm_server`` fixture (registered for this repository in tests/conftest.py)."""

from __future__ import annotations

import contextlib

import openai

from smart_core.testing import Behaviour, FakeLLMServer, Fault


def test_fixture_gives_a_running_echo_server(fake_llm_server):
    assert isinstance(fake_llm_server, FakeLLMServer)
    client = openai.OpenAI(base_url=fake_llm_server.openai_base_url, api_key="k")
    r = client.chat.completions.create(model="any", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello! You said: hi"


def test_each_test_gets_a_fresh_server(fake_llm_server):
    assert fake_llm_server.requests == [] and fake_llm_server.models == {}
    fake_llm_server.models["m"] = Behaviour(faults=[Fault("server_error")])
    client = openai.OpenAI(base_url=fake_llm_server.openai_base_url, api_key="k", max_retries=1)
    with contextlib.suppress(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert fake_llm_server.calls("m") == 2
