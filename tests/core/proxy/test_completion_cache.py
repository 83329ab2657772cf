"""The proxy's cache codec and key, as pure functions: what is kept of a completion, how a hit
comes back whole and as chunks (several choices, refusals, tool calls), which body fields key a
request, and the headers that name its namespace."""

from __future__ import annotations

import pytest

from smart_core.cache import CachedAnswer
from smart_core.providers.chat_completions import answer_from_completion
from smart_core.proxy.completion_cache import (
    CompletionCodec,
    InvalidCacheRequest,
    _user,
    _wanted,
    cache_request,
    semantic_parts,
)

CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
COMPLETION = {
    "id": "chatcmpl-upstream",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "two words"}},
        {
            "index": 1,
            "message": {"role": "assistant", "content": None, "tool_calls": [CALL]},
            "finish_reason": "tool_calls",
        },
        {"index": 2, "message": {"role": "assistant", "refusal": "no"}, "finish_reason": "stop"},
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
}


def stored() -> CachedAnswer:
    codec = CompletionCodec()
    answer = answer_from_completion("openai:gpt-4o", COMPLETION)
    return CachedAnswer.loads(CachedAnswer(answer, 0.01, 1.0, codec.encode(answer)).dumps())


def test_every_choice_is_kept_and_comes_back_as_a_fresh_completion_without_usage():
    hit = CompletionCodec().decode(stored())
    raw = hit.raw
    assert raw["id"] != COMPLETION["id"] and raw["model"] == "gpt-4o-2024-08-06"
    assert raw["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert [c["message"] for c in raw["choices"]] == [c["message"] for c in COMPLETION["choices"]]
    assert [c["finish_reason"] for c in raw["choices"]] == ["stop", "tool_calls", "stop"]
    assert hit.text == "two words" and hit.usage.input_tokens == 9  # what the reference used
    assert "chatcmpl-upstream" not in stored().dumps()  # nothing of the upstream response id


def test_a_hit_streams_each_choice_word_by_word_then_the_usage():
    codec = CompletionCodec()
    chunks = list(codec.chunks(codec.decode(stored())))
    deltas = [(c["choices"][0]["index"], c["choices"][0]["delta"]) for c in chunks[:-1]]
    assert [d["content"] for i, d in deltas if i == 0 and d.get("content")] == ["two ", "words"]
    assert [d["tool_calls"] for i, d in deltas if i == 1 and "tool_calls" in d] == [
        [{"index": 0, **CALL}]
    ]
    assert [d["refusal"] for i, d in deltas if "refusal" in d] == ["no"]
    finishes = [c["choices"][0].get("finish_reason") for c in chunks[:-1]]
    assert [f for f in finishes if f] == ["stop", "tool_calls", "stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 0


def test_the_key_leaves_out_only_what_changes_no_answer():
    body = {
        "model": "task",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "ann",
        "metadata": {"a": "b"},
        "temperature": 0.2,
        "tools": [],
        "n": 2,
    }
    request = cache_request(body)
    assert set(request) == {"messages", "temperature", "tools", "n"}
    parts = semantic_parts(request)
    assert parts["text"] == "q" and parts["context"]["messages"] == body["messages"][:1]
    assert parts["context"]["temperature"] == 0.2
    parts_of_list = semantic_parts({"messages": [{"role": "user", "content": [{"text": "q"}]}]})
    assert semantic_parts({"messages": [{"role": "assistant", "content": "a"}]}) == {}
    assert parts_of_list == {}


def test_the_namespace_and_opt_out_headers():
    assert _user({"x-smart-user": "ann"}, {"user": "bob"}) == "ann"
    assert _user({}, {"user": "bob"}) == "bob"
    assert _user({}, {"user": ""}) is None and _user({}, {}) is None
    with pytest.raises(InvalidCacheRequest, match="user: must be a string"):
        _user({}, {"user": 7})
    assert _wanted(None) and _wanted("on") and not _wanted("off") and not _wanted(" OFF ")
    with pytest.raises(InvalidCacheRequest, match="x-smart-cache: expected 'off'"):
        _wanted("later")
