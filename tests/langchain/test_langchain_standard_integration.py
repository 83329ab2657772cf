"""langchain-tests' integration suite for SmartChatModel with real ChatOpenAI and ChatAnthropic
inside, against the local fake server (``SMART_FAKE_LLM_URL``, started by conftest.py).

The reference is OpenAI's, the candidate Anthropic's: early requests are probes (the reference
answers, the candidate is called beside it), ``model=`` forces the Anthropic model, so both
clients are exercised through the router, streaming and not.
"""

from __future__ import annotations

import os

from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

from smart_langchain import SmartChatModel


def _url() -> str:
    return os.environ["SMART_FAKE_LLM_URL"]


def inner_models() -> dict:
    return {
        "reference": ChatOpenAI(
            model="gpt-4o", base_url=_url() + "/v1", api_key="sk-test", stream_usage=True
        ),
        "candidates": [
            ChatAnthropic(model="claude-haiku-4-5", base_url=_url(), api_key="sk-ant-test")
        ],
    }


class TestSmartChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[SmartChatModel]:
        return SmartChatModel

    @property
    def chat_model_params(self) -> dict:
        return {**inner_models(), "epsilon": 0.05, "task": "standard-suite"}

    @property
    def model_override_value(self) -> str:
        return "claude-haiku-4-5"
