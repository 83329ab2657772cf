"""Answering from a ``smart replay`` file: matching, outputs, tokens, and errors over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import openai
import pytest

from smart_core import ReplayFormatError
from smart_core.testing import BadRequest, Behaviour, FakeLLMServer, Message, Prompt, Reply, replay

ITEMS = [
    {
        "id": "q1",
        "input": "What is 2+2?",
        "outputs": {
            "big": {"text": "4", "input_tokens": 12, "output_tokens": 1},
            "small": {"text": "four"},
        },
    },
    {"id": "q2", "input": "Capital of France?", "outputs": {"big": {"text": "Paris"}}},
    {"id": "q3", "input": "France", "outputs": {"big": {"text": "short match"}}},
    {
        "id": "q4",
        "input": {"text": "Structured input"},
        "outputs": {"big": {"text": "from text field"}},
    },
]


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in ITEMS) + "\n", encoding="utf-8")
    return path


def ask(text: str, model: str = "big", *before: Message) -> Prompt:
    return Prompt(model=model, api="openai", messages=(*before, Message("user", text)))


def test_exact_match_after_stripping_whitespace_with_logged_tokens(log_file):
    answer = replay(log_file)
    assert answer(ask("  What is 2+2?\n")) == Reply("4", input_tokens=12, output_tokens=1)
    assert answer(ask("What is 2+2?", "small")) == Reply("four")  # no logged counts: estimate


def test_otherwise_the_longest_input_contained_in_the_prompt_wins(log_file):
    answer = replay(log_file)
    templated = ask("Answer briefly.\nQuestion: Capital of France?\nAnswer:")
    assert answer(templated).text == "Paris"  # "France" is contained too, but shorter
    assert answer(ask("Tell me about France")).text == "short match"
    in_system = ask("go", "big", Message("system", "Capital of France?"))
    assert answer(in_system).text == "Paris"


def test_non_string_inputs_match_by_their_text_field(log_file):
    assert replay(log_file)(ask("Structured input")).text == "from text field"


def test_model_is_the_requested_one_unless_fixed(log_file):
    assert replay(log_file, model="small")(ask("What is 2+2?", "anything")).text == "four"
    assert replay(log_file).models == ["big", "small"]


def test_errors_name_the_model_and_what_is_missing(log_file):
    answer = replay(log_file)
    with pytest.raises(
        BadRequest,
        match=r"model 'big': no item of .*log\.jsonl \(4 items\) matches the prompt 'unknown'",
    ):
        answer(ask("unknown"))
    with pytest.raises(
        BadRequest,
        match=r"model 'small': replay item 'q2' .* has no output for it \(it has \['big'\]\)",
    ):
        answer(ask("Capital of France?", "small"))


def test_malformed_files_fail_when_loaded(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    with pytest.raises(ReplayFormatError, match=r"bad\.jsonl:1"):
        replay(bad)


def test_replay_over_http_for_both_apis(log_file):
    answer = replay(log_file)
    with FakeLLMServer({m: Behaviour(answer) for m in answer.models}) as server:
        r = openai.OpenAI(base_url=server.openai_base_url, api_key="k").chat.completions.create(
            model="big", messages=[{"role": "user", "content": "What is 2+2?"}]
        )
        assert r.choices[0].message.content == "4" and r.usage.prompt_tokens == 12
        m = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k").messages.create(
            model="small", max_tokens=5, messages=[{"role": "user", "content": "What is 2+2?"}]
        )
        assert m.content[0].text == "four"
        with pytest.raises(openai.BadRequestError, match="model 'big': no item"):
            openai.OpenAI(base_url=server.openai_base_url, api_key="k").chat.completions.create(
                model="big", messages=[{"role": "user", "content": "nothing like it"}]
            )
        assert [r.status for r in server.requests] == [200, 200, 400]  # 400 is not retried
