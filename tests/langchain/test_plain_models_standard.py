"""langchain-tests' integration suite against plain ChatOpenAI and ChatAnthropic pointed at the
fake server: proof that it answers everything the official clients and LangChain's own
conformance tests ask, in the shapes they expect (streaming, tools, structured output, usage)."""

from __future__ import annotations

import os

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

# The model names are the suite's usual ones; anthropic warns that they are retired upstream,
# which says nothing about the fake server.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def _url() -> str:
    return os.environ["SMART_FAKE_LLM_URL"]


@pytest.mark.slow
class TestChatOpenAIOnFakeServer(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatOpenAI]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict:
        # stream_usage defaults to off when base_url is set; the real API streams usage.
        return {
            "model": "gpt-4o-mini",
            "base_url": _url() + "/v1",
            "api_key": "sk-test",
            "stream_usage": True,
        }

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "gpt-4o"


@pytest.mark.slow
class TestChatAnthropicOnFakeServer(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatAnthropic]:
        return ChatAnthropic

    @property
    def chat_model_params(self) -> dict:
        return {"model": "claude-3-5-haiku-latest", "base_url": _url(), "api_key": "sk-ant-test"}

    @property
    def model_override_value(self) -> str:
        return "claude-3-5-sonnet-latest"
