"""How :class:`~smart_langchain.SmartChatModel`'s serving flow reaches its inner models: the
``Calls`` handed to the router's drivers (a call answering the user, a silent probe call, how
streamed chunks become an answer, the request's view of the answer cache), and the inner model's
call prepared with tools, structured output and the cascade steps' logprobs.

Calls answering the user get the outer model's run manager (one traced run per user call); probe
calls get none, so they stay invisible to the user's callbacks and tracers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.outputs.chat_generation import merge_chat_generation_chunks
from langchain_core.runnables import Runnable, RunnableBinding

from smart_core import Answer, Calls

from ._cache import CACHE_KEYS, MessageCodec, cache_request, semantic_parts
from ._convert import answer_from_message, chunk_from_message, logprobs_in, neutral_messages
from ._tools import STRUCTURED_KEY as _STRUCTURED_KEY
from ._tools import TOOLS_KEY as _TOOLS_KEY
from ._usage import estimated_usage

__all__ = ["TASK_KEY", "InnerCalls"]

#: The call kwarg (and run metadata key) naming a call's task.
TASK_KEY = "smart_task"
# Call kwargs that are SMART's own and never reach an inner model.
_PRIVATE = frozenset({TASK_KEY, _TOOLS_KEY, _STRUCTURED_KEY, "model", "tools", "tool_choice"})
_PRIVATE |= CACHE_KEYS
#: Call kwargs that shape no answer, left out of the answer cache's key.
_UNKEYED = frozenset({TASK_KEY, "model", "stream"}) | CACHE_KEYS


class InnerCalls:
    """The ``Calls`` of :class:`~smart_langchain.SmartChatModel` (a mixin: it reads the model's
    inner models, router, settings and usage warnings)."""

    def _prepare(
        self, name: str, kwargs: Mapping[str, Any], *, stream: bool | None = None
    ) -> tuple[BaseChatModel, dict[str, Any]]:
        """The inner model to call for ``name`` and its call kwargs (tools bound its way)."""
        inner = self._models[name]
        call = {k: v for k, v in kwargs.items() if k not in _PRIVATE}
        if self.temperature is not None:
            call.setdefault("temperature", self.temperature)
        if self.max_tokens is not None:
            call.setdefault("max_tokens", self.max_tokens)
        if stream is False:
            call.pop("stream", None)
        if name in self._logprob_models and "logprobs" in type(inner).model_fields:
            # A cascade step judged by its confidence: asked on every call of the model, served
            # or probed, so a probe judges the step on what serving it would have seen.
            call.setdefault("logprobs", True)
        if kwargs.get("tools"):
            options = dict(kwargs.get(_TOOLS_KEY) or {})
            if kwargs.get("tool_choice") is not None:
                options["tool_choice"] = kwargs["tool_choice"]
            inner, extra = _unbind(inner.bind_tools(kwargs["tools"], **options))
            call.update(extra)
        spec = kwargs.get(_STRUCTURED_KEY)
        if spec:
            structured = inner.with_structured_output(
                spec["schema"], method=spec["method"], **spec["kwargs"]
            )
            first = getattr(structured, "first", structured)
            inner, extra = _unbind(first)
            call.update(extra)
        return inner, call

    def _stop(self, stop: list[str] | None) -> list[str] | None:
        if stop is not None:
            return stop
        return list(self.stop) if self.stop else None

    def _answer(self, message: BaseMessage, name: str, prompt: list[BaseMessage]) -> Answer:
        """The engine's view of ``name``'s answer; without usage, its tokens are estimated."""
        answer = answer_from_message(message, name)
        if getattr(message, "usage_metadata", None) is None:
            answer.usage = estimated_usage(prompt, message)
            self._usage_warnings.warn(name, self._models[name])
        return answer

    def _result_answer(self, result: ChatResult, name: str, prompt: list[BaseMessage]) -> Answer:
        """A whole answer, carrying LangChain's ``ChatResult`` to hand back to the user."""
        generation = result.generations[0]
        answer = self._answer(generation.message, name, prompt)
        answer.raw = result
        answer.logprobs = logprobs_in(
            generation.generation_info, generation.message.response_metadata
        )
        return answer

    def _streamed_answer(
        self, chunks: list[ChatGenerationChunk], name: str, prompt: list[BaseMessage]
    ) -> Answer:
        merged = merge_chat_generation_chunks(chunks)
        if merged is None:
            return Answer(text="", model=name)
        answer = self._answer(merged.message, name, prompt)
        answer.logprobs = logprobs_in(merged.generation_info, merged.message.response_metadata)
        return answer

    def _calls(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: Mapping[str, Any],
    ) -> Calls:
        def call(name: str, manager: CallbackManagerForLLMRun | None = run_manager) -> Answer:
            inner, call_kwargs = self._prepare(name, kwargs, stream=False)
            result = inner._generate_with_cache(
                messages, stop=stop, run_manager=manager, **call_kwargs
            )
            return self._result_answer(result, name, messages)

        cache = self._request_cache(messages, stop, run_manager, kwargs)
        request = neutral_messages(messages)
        return Calls(call, lambda name: call(name, None), cache=cache, request=request)

    def _request_cache(
        self, messages: list[BaseMessage], stop: list[str] | None, run_manager: Any, kwargs: Any
    ) -> Any:
        """This request's view of the answer cache; None when it is off or the run opted out
        (``config={"metadata": {"smart_cache": False}}``)."""
        meta = {**(getattr(run_manager, "metadata", None) or {}), **kwargs}
        if self._router.cache is None or meta.get("smart_cache") is False:
            return None
        params = {k: v for k, v in kwargs.items() if k not in _UNKEYED}
        params.setdefault("temperature", self.temperature)
        params.setdefault("max_tokens", self.max_tokens)
        request = cache_request(messages, stop, params)
        return self._router.request_cache(
            request,
            tenant=_name(meta, "smart_tenant"),
            user=_name(meta, "smart_user"),
            codec=MessageCodec(),
            **semantic_parts(request),
        )

    def _acalls(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: Mapping[str, Any],
    ) -> Calls:
        async def call(
            name: str, manager: AsyncCallbackManagerForLLMRun | None = run_manager
        ) -> Answer:
            inner, call_kwargs = self._prepare(name, kwargs, stream=False)
            result = await inner._agenerate_with_cache(
                messages, stop=stop, run_manager=manager, **call_kwargs
            )
            return self._result_answer(result, name, messages)

        cache = self._request_cache(messages, stop, run_manager, kwargs)
        request = neutral_messages(messages)
        return Calls(call, lambda name: call(name, None), cache=cache, request=request)

    def _stream_calls(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: Any,
        kwargs: Mapping[str, Any],
        *,
        is_async: bool,
    ) -> Calls:
        if is_async:
            probe = self._acalls(messages, stop, None, kwargs).probe
            relay: Any = self._inner_astream
        else:
            probe = self._calls(messages, stop, None, kwargs).probe
            relay = self._inner_stream
        return Calls(
            call=lambda name: relay(name, messages, stop, run_manager, kwargs),
            probe=probe,
            streamed=lambda name, chunks: self._streamed_answer(chunks, name, messages),
            cache=self._request_cache(messages, stop, run_manager, kwargs),
            request=neutral_messages(messages),
        )

    def _inner_stream(
        self,
        name: str,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: Mapping[str, Any],
    ) -> Iterator[ChatGenerationChunk]:
        inner, call_kwargs = self._prepare(name, kwargs)
        if type(inner)._stream is BaseChatModel._stream:  # cannot stream: one chunk
            call_kwargs.pop("stream", None)
            result = inner._generate_with_cache(
                messages, stop=stop, run_manager=run_manager, **call_kwargs
            )
            yield chunk_from_message(result.generations[0].message)  # type: ignore[arg-type]
            return
        yield from inner._stream(messages, stop=stop, run_manager=run_manager, **call_kwargs)

    async def _inner_astream(
        self,
        name: str,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: Mapping[str, Any],
    ) -> AsyncIterator[ChatGenerationChunk]:
        inner, call_kwargs = self._prepare(name, kwargs)
        cls = type(inner)
        if cls._astream is BaseChatModel._astream and cls._stream is BaseChatModel._stream:
            call_kwargs.pop("stream", None)
            result = await inner._agenerate_with_cache(
                messages, stop=stop, run_manager=run_manager, **call_kwargs
            )
            yield chunk_from_message(result.generations[0].message)  # type: ignore[arg-type]
            return
        async for chunk in inner._astream(
            messages, stop=stop, run_manager=run_manager, **call_kwargs
        ):
            yield chunk


def _unbind(runnable: Runnable[Any, Any]) -> tuple[BaseChatModel, dict[str, Any]]:
    """The chat model under ``runnable`` and the call kwargs its bindings add."""
    kwargs: dict[str, Any] = {}
    while isinstance(runnable, RunnableBinding):
        kwargs = {**runnable.kwargs, **kwargs}
        runnable = runnable.bound
    if not isinstance(runnable, BaseChatModel):
        raise TypeError(f"expected a chat model under the binding, got {type(runnable).__name__}")
    kwargs.pop("ls_structured_output_format", None)
    return runnable, kwargs


def _name(meta: Mapping[str, Any], key: str) -> str | None:
    """A tenant or user name from the run metadata; anything but a string is refused."""
    value = meta.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise ValueError(
        f"{key} must be a string naming the {key.removeprefix('smart_')}, got {value!r}; "
        f"e.g. config={{'metadata': {{'{key}': 'acme'}}}}"
    )
