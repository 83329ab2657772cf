"""Endpoints over the official ``openai`` and ``anthropic`` SDKs, for ``smart run``, ``smart demo``
and anyone driving ``SmartRouter`` without a framework.
"""

__all__: list[str] = []
