"""The `smart` command line: one module per command group."""

from .app import app, main

__all__ = ["app", "main"]
