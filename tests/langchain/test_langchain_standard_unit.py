"""langchain-tests' unit suite (no network) for SmartChatModel over in-process fake models."""

from __future__ import annotations

from langchain_fakes import FAKE_PRICES, FakeChat
from langchain_tests.unit_tests import ChatModelUnitTests

from smart_langchain import SmartChatModel


class TestSmartChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[SmartChatModel]:
        return SmartChatModel

    @property
    def chat_model_params(self) -> dict:
        return {
            "reference": FakeChat(model_name="fake-large"),
            "candidates": [FakeChat(model_name="fake-small")],
            "epsilon": 0.05,
            "prices": FAKE_PRICES,
        }
