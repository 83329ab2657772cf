"""LlamaIndex adapter for SMART (``SmartLLM``); built on :mod:`smart_core` in a later release."""

__all__: list[str] = []
