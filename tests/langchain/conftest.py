"""One fake OpenAI/Anthropic server for every LangChain suite in this directory.

langchain-tests reads a model's settings from ``chat_model_params``, a property evaluated while
tests are collected, outside any fixture; so the server starts when this file is imported and its
URL is published in the ``SMART_FAKE_LLM_URL`` environment variable. Tests that need the server
object (to script models or count requests) take the ``shared_fake_llm_server`` fixture.
"""

from __future__ import annotations

import atexit
import os

import pytest

from smart_core.testing import FakeLLMServer

_SERVER = FakeLLMServer().start()
atexit.register(_SERVER.stop)
os.environ["SMART_FAKE_LLM_URL"] = _SERVER.url


@pytest.fixture(scope="session")
def shared_fake_llm_server() -> FakeLLMServer:
    """The server behind ``SMART_FAKE_LLM_URL`` (every model answers with ``echo``)."""
    return _SERVER
