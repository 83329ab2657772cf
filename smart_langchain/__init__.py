"""LangChain adapter for SMART (``SmartChatModel``), built on :mod:`smart_core`; coming next."""

__all__: list[str] = []
