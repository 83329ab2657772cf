"""LangChain adapter for SMART (``SmartChatModel``); built on :mod:`smart_core` in a later release."""

__all__: list[str] = []
