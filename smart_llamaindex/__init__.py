"""LlamaIndex adapter for SMART (``SmartLLM``), built on :mod:`smart_core`; coming next."""

__all__: list[str] = []
