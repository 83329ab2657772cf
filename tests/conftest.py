"""Fixtures every suite may use (the framework suites' own live in their directories)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from smart_core.testing import FakeLLMServer

pytest_plugins = ["smart_core.testing.pytest_plugin"]


def _right_letter(text: str) -> str:
    return "AB"[hashlib.sha256(text.encode()).digest()[0] % 2]


def _wrong_when_tricky(prompt) -> str:
    """Right on plain requests, wrong on those whose text says they are tricky."""
    text = prompt.last_user_text
    right = _right_letter(text)
    return ("B" if right == "A" else "A") if "tricky" in text else right


@pytest.fixture
def tricky_quiz_server() -> Iterator[FakeLLMServer]:
    """A local server where ``gpt-4o`` (the reference) answers each prompt's letter and
    ``gpt-4o-mini`` gets it wrong exactly when the prompt says it is tricky: a scorer that
    reads the request can learn when to trust the cheap model."""
    models = {
        "gpt-4o": lambda p: _right_letter(p.last_user_text),
        "gpt-4o-mini": _wrong_when_tricky,
    }
    with FakeLLMServer(models) as srv:
        yield srv
