"""``smart serve``: SMART behind an OpenAI-compatible HTTP API, for any OpenAI client."""

from .app import TASK_HEADER, create_app

__all__ = ["TASK_HEADER", "create_app"]
