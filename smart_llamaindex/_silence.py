"""Keep probe calls out of the user's instrumentation.

A probe calls cheaper candidates beside the user's call, through their ordinary (decorated)
LlamaIndex methods. Those decorators emit instrumentation events and spans on module-level
dispatchers that every handler hears. :func:`silenced` marks the current context (a probe's
asyncio task or worker thread) so that the dispatcher drops events and spans raised inside it;
everything outside such a context is untouched. The legacy ``CallbackManager`` is handled
separately: probes run on copies of the candidates with a handler-free manager.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from llama_index.core.callbacks import CallbackManager

__all__ = ["install", "is_silenced", "silenced", "silent_callback_manager"]

_SILENT: ContextVar[bool] = ContextVar("smart_llamaindex_silent", default=False)
_MARK = "__smart_llamaindex_gate__"


def is_silenced() -> bool:
    return _SILENT.get()


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Inside this block (this thread or task only), LlamaIndex instrumentation is dropped."""
    token = _SILENT.set(True)
    try:
        yield
    finally:
        _SILENT.reset(token)


def _gate(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def gated(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _SILENT.get():
            return None
        return method(self, *args, **kwargs)

    setattr(gated, _MARK, True)
    return gated


def _agate(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def gated(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _SILENT.get():
            return None
        return await method(self, *args, **kwargs)

    setattr(gated, _MARK, True)
    return gated


def install() -> None:
    """Gate the dispatcher's event and span entry points on the silence flag (idempotent)."""
    from llama_index_instrumentation.dispatcher import Dispatcher

    for name in ("event", "span_enter", "span_exit", "span_drop"):
        method = getattr(Dispatcher, name)
        if not getattr(method, _MARK, False):
            setattr(Dispatcher, name, _gate(method))
    if not getattr(Dispatcher.aevent, _MARK, False):
        Dispatcher.aevent = _agate(Dispatcher.aevent)  # type: ignore[method-assign]


def silent_callback_manager() -> CallbackManager:
    """A CallbackManager with no handlers (``CallbackManager([])`` would copy Settings')."""
    manager = CallbackManager()
    manager.handlers = []
    return manager
