"""A reusable in-process chat model for tests that need no server.

``GenericFakeChatModel`` is exhausted after its iterator runs out and has no ``bind_tools``;
``FakeChat`` answers every call (a function of the last user text), reports usage and its
``model_name`` like a provider, streams word by word, calls a bound tool when one is forced,
and can fail or sleep on demand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field


def _last_user_text(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if message.type == "human":
            return message.text
    return ""


class FakeChat(BaseChatModel):
    """Answers ``reply(last user text)`` (default: ``"echo: <text>"``).

    ``fail`` is raised by every call (set it to simulate a provider error); ``delay`` seconds
    pass before answering. ``calls`` logs each call's user text, ``call_kwargs`` its kwargs.
    """

    model_name: str = "fake"
    reply: Callable[[str], str] | None = None
    tool_args: Callable[[str], dict[str, Any]] | None = None
    fail: BaseException | None = None
    delay: float = 0.0
    calls: list[str] = Field(default_factory=list)
    call_kwargs: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "fake-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        text = _last_user_text(messages)
        self.calls.append(text)
        self.call_kwargs.append(dict(kwargs))
        if self.fail is not None:
            raise self.fail
        tools = kwargs.get("tools") or []
        choice = kwargs.get("tool_choice")
        tool_calls = []
        if tools and choice not in (None, "auto", "none"):
            names = [t["function"]["name"] for t in tools]
            name = choice if choice in names else names[0]
            args = self.tool_args(text) if self.tool_args else {}
            tool_calls = [{"name": name, "args": args, "id": f"call_{len(self.calls)}"}]
            content = ""
        else:
            content = self.reply(text) if self.reply else f"echo: {text}"
        usage = {
            "input_tokens": max(1, len(text.split())),
            "output_tokens": max(1, len(content.split())),
        }
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        return AIMessage(
            content=content,
            tool_calls=tool_calls,
            usage_metadata=usage,  # type: ignore[arg-type]
            response_metadata={"model_name": self.model_name, "model_provider": "fake"},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay:
            time.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, kwargs))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, kwargs))])

    def _chunks(self, message: AIMessage) -> list[ChatGenerationChunk]:
        words = message.text.split(" ") if message.text else [""]
        chunks = []
        for i, word in enumerate(words):
            chunk = AIMessageChunk(content=word if i == 0 else " " + word)
            if i == 0:
                chunk.response_metadata = dict(message.response_metadata)
                chunk.usage_metadata = message.usage_metadata
                chunk.tool_call_chunks = [
                    {"name": c["name"], "args": _json(c["args"]), "id": c["id"], "index": j}
                    for j, c in enumerate(message.tool_calls)
                ]
            chunks.append(ChatGenerationChunk(message=chunk))
        chunks[-1].message.chunk_position = "last"
        return chunks

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if self.delay:
            time.sleep(self.delay)
        kwargs.pop("stream", None)
        yield from self._chunks(self._answer(messages, kwargs))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.delay:
            await asyncio.sleep(self.delay)
        kwargs.pop("stream", None)
        for chunk in self._chunks(self._answer(messages, kwargs)):
            yield chunk


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


FAKE_PRICES = {"fake-large": (10.0, 30.0), "fake-small": (0.1, 0.3), "fake-mid": (1.0, 3.0)}


def call_by_path(llm: Any, path: str, prompt: str = "q") -> None:
    """Serve ``prompt`` through one of the four entry points (``invoke``, ``stream``,
    ``ainvoke``, ``astream``), so error tests cover every path with one body."""

    async def run_async() -> None:
        if path == "ainvoke":
            await llm.ainvoke(prompt)
        else:
            [c async for c in llm.astream(prompt)]

    if path == "invoke":
        llm.invoke(prompt)
    elif path == "stream":
        list(llm.stream(prompt))
    else:
        asyncio.run(run_async())
