"""pytest plugin: the ``fake_llm_server`` fixture.

Enable it with ``pytest_plugins = ["smart_core.testing.pytest_plugin"]`` in a ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import FakeLLMServer

__all__ = ["fake_llm_server"]


@pytest.fixture
def fake_llm_server() -> Iterator[FakeLLMServer]:
    """A running :class:`FakeLLMServer` of its own for each test, every model answering with
    :func:`echo`; assign ``fake_llm_server.models[name] = Behaviour(...)`` to script models."""
    with FakeLLMServer() as server:
        yield server
