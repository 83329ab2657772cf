"""Lock smart_core.testing's public surface."""

from __future__ import annotations

import smart_core.testing

EXPECTED_ALL = [
    "BadRequest",
    "Behaviour",
    "FakeLLMServer",
    "Fault",
    "FaultKind",
    "Message",
    "Prompt",
    "ReplayResponder",
    "Reply",
    "RequestRecord",
    "Responder",
    "Tool",
    "ToolCall",
    "count_tokens",
    "echo",
    "force_route",
    "instance_from_schema",
    "replay",
]


def test_public_names_are_exactly_the_expected_ones():
    """Adding or removing a public name is an API change: update EXPECTED_ALL deliberately."""
    assert sorted(smart_core.testing.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert getattr(smart_core.testing, name) is not None
