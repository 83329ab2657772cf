"""Exception types: one base class so callers can catch everything SMART raises on purpose."""

from __future__ import annotations

__all__ = ["ConfigError", "ReplayFormatError", "SmartError", "StoreError"]


class SmartError(Exception):
    """Base class of every error SMART raises deliberately."""


class ConfigError(SmartError, ValueError):
    """A configuration value is invalid; the message names the field and the fix."""


class StoreError(SmartError):
    """A state store could not be opened or written."""


class ReplayFormatError(SmartError, ValueError):
    """A replay file is malformed; the message names the line number."""
