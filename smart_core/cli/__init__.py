"""The `smart` command line: one module per command, the app that registers them in `app`."""

from .app import app, main

__all__ = ["app", "main"]
