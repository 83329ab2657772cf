"""``SmartLLM``: a LlamaIndex ``FunctionCallingLLM`` that routes each call to a cheaper model
while keeping SMART's guarantee against a reference model.

The router is *transparent*: its methods carry no ``@llm_chat_callback`` decorators. Each call is
delegated to the routed inner LLM's own public method, whose decorators emit the one pair of
instrumentation events and the one ``CallbackManager`` record of the call; the router hands its
``callback_manager`` to that inner LLM first, so handlers see exactly one LLM event per call
whatever order the objects were built in. Probe calls to candidates run on handler-free copies
of the candidates inside a silenced context (see ``_silence``), so they add no events, spans or
token counts to the user's call.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection

from smart_core import (
    Answer,
    Calls,
    Ledger,
    SmartRouter,
    Store,
    Streamed,
    Ticket,
)
from smart_core.engine.framework_adapter import check_task
from smart_core.task.cascades import logprob_models

from . import _silence
from ._cache import CACHE_KWARGS, ResponseCodec, cache_request, embedder_of, semantic_parts
from ._convert import answer_from_response, logprobs_from_raw, neutral_request, prompt_text
from ._models import build_config, name_models

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["SMART_KEY", "SmartLLM"]

SMART_KEY = "smart"
"""The ``additional_kwargs`` key holding SMART's routing record on every response."""

_TASK_KWARG = "smart_task"
_REQUEST_ID_KWARG = "smart_request_id"
_TOOL_OPTIONS = ("tool_required", "allow_parallel_tool_calls", "verbose")

_silence.install()


def _is_tool_list(tools: Any) -> bool:
    from llama_index.core.tools.types import BaseTool

    return isinstance(tools, list | tuple) and all(isinstance(t, BaseTool) for t in tools)


class SmartLLM(FunctionCallingLLM):
    """A drop-in LlamaIndex LLM that answers from cheaper models when SMART can prove that at most
    ``epsilon`` of answers differ from the ``reference`` model's, with confidence ``1 - delta``.

    ```python
    Settings.llm = SmartLLM(
        reference=OpenAI(model="gpt-4o"),
        candidates=[OpenAI(model="gpt-4o-mini"), Anthropic(model="claude-3-5-haiku-latest")],
        epsilon=0.05, delta=0.05, task="support-rag", store="sqlite:///smart.db",
    )
    ```

    Model names (for prices, statistics and the certificate) come from the inner LLMs' ``model``;
    pass ``candidates`` as a dict ``{name: llm}`` to name them yourself. Every response carries
    ``additional_kwargs["smart"]``: the route that answered, whether the call was a probe, the
    request id, its cost in USD and the certificate (on the last chunk of a stream). Choose the
    task per call with the ``smart_task=...`` keyword (default: ``task``).
    """

    reference: Any = Field(exclude=True, description="The LLM whose answers define 'correct'.")
    candidates: Any = Field(
        exclude=True,
        description="Cheaper LLMs SMART may answer from: a list, or a dict {name: llm}.",
    )
    epsilon: float = Field(description="Allowed share of answers differing from the reference's.")
    delta: float = Field(default=0.05, description="Allowed probability the guarantee fails.")
    task: str = Field(default="default", description="Default task (statistics are per task).")
    store: Any = Field(
        default="memory://",
        exclude=True,
        description="State store URL (memory://, sqlite:///path.db) or a smart_core Store.",
    )
    expected_requests: int | None = Field(
        default=None, description="Expected request volume, so profiling pays for itself."
    )
    batch_size: int | None = Field(default=None, description="Known batch size (batch mode).")
    audit_rate: float | None = Field(
        default=None, description="Share of routed requests re-checked against the reference."
    )
    comparator: Any = Field(
        default="tool_calls",
        exclude=True,
        description="How answers are compared; default compares tool calls, else exact text.",
    )
    prices: Any = Field(
        default=None,
        exclude=True,
        description="Price overrides in USD per 1M tokens: {model name: (input, output)}.",
    )
    method: str = Field(
        default="anytime", description="Confidence bound: anytime or clopper-pearson."
    )
    delta_weights: dict[str, float] | None = Field(
        default=None,
        description="How delta is split over the candidates (positive weights by name).",
    )
    cascades: Any = Field(
        default=None,
        description="Cascades routed to besides the candidates, measured on probes like a "
        "candidate: 'auto' or a list of smart_core Cascade (docs/cascades.md).",
    )
    threshold_families: Literal["union", "fixed-sequence"] = Field(
        default="union",
        description="How a grid of one cascade's thresholds is certified online: 'union' "
        "(default), each threshold its own share of delta; 'fixed-sequence', the grid one share "
        "(docs/cascades.md).",
    )
    seed: int | None = Field(default=None, description="Seed for reproducible route draws.")
    wait_for_probes: bool = Field(
        default=False,
        description="Record each probe before returning (default: in the background).",
    )
    cache: str = Field(
        default="off",
        description="Answer cache: 'exact' serves the reference's earlier answer to an identical "
        "request without calling any model (docs/cache.md); 'off' never looks.",
    )
    cache_answers: str = Field(
        default="shared",
        description="'shared': a tenant's users share cached answers; 'per_user': only the user "
        "who asked (smart_user=...); a request naming no user then skips the cache.",
    )
    tenant: str = Field(
        default="default", description="Tenant of requests that name none (smart_tenant=...)."
    )
    cache_ttl_seconds: float | None = Field(
        default=7 * 24 * 3600.0, description="How long a cached answer is served (None: no end)."
    )
    cache_max_entries: int = Field(default=100_000, description="Cached answers kept per task.")
    cache_similarities: tuple[float, ...] = Field(
        default=(0.8, 0.85, 0.9, 0.95),
        description="With cache='semantic': a route cache:semantic@s per threshold, certified on "
        "probes like a candidate (docs/cache.md).",
    )
    embed_model: Any = Field(
        default=None,
        description="With cache='semantic': a LlamaIndex embedding model comparing the last user "
        "message (or the prompt) with earlier ones; default: SMART's offline embedder.",
    )
    model_names: list[str] = Field(
        default_factory=list, description="Reference first, then candidates (derived)."
    )

    _router: SmartRouter = PrivateAttr()
    _llms: dict[str, LLM] = PrivateAttr()
    _probe_llms: dict[str, LLM] = PrivateAttr()
    _reference_name: str = PrivateAttr()
    _logprob_models: frozenset[str] = PrivateAttr(default=frozenset())

    def __init__(self, **data: Any) -> None:
        names, llms = name_models(data.get("reference"), data.get("candidates"))
        data["model_names"] = names
        super().__init__(**data)
        config = build_config(self, names)
        store = self.store if isinstance(self.store, Store) else None
        self._router = SmartRouter(
            config,
            store=store,
            seed=self.seed,
            wait_for_probes=self.wait_for_probes,
            embedder=embedder_of(self.embed_model),
        )
        self._llms = dict(zip(names, llms, strict=True))
        self._reference_name = names[0]
        self._probe_llms = {
            n: _silent_copy(llm) for n, llm in zip(names[1:], llms[1:], strict=True)
        }
        # A cascade step judged by its confidence: its model is asked for logprobs on every
        # call, served or probed, so a probe judges the step on what serving it would see. Only
        # OpenAI-style chat LLMs take the option; any other model's step always escalates.
        self._logprob_models = frozenset(
            n for n in logprob_models(config.cascade_list()) if _takes_logprobs(self._llms[n])
        )

    @classmethod
    def class_name(cls) -> str:
        return "SmartLLM"

    # -- public helpers --------------------------------------------------------------------------

    @property
    def router(self) -> SmartRouter:
        """The :class:`smart_core.SmartRouter` doing the routing (config, store, policies)."""
        return self._router

    @property
    def llms(self) -> dict[str, LLM]:
        """The inner LLMs by model name, reference first."""
        return dict(self._llms)

    def ledger(self, task: str | None = None) -> Ledger:
        """Spend, savings and the policy in force for ``task`` (default: this LLM's task)."""
        return self._router.ledger(task or self.task)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every probe started by a synchronous call has been recorded."""
        self._router.flush(timeout)

    async def aflush(self) -> None:
        """Wait until every background probe (async or threaded) has been recorded."""
        await self._router.aflush()

    def close(self, *, wait: bool = True) -> None:
        """Finish (or with ``wait=False`` abandon) threaded probes, then close the store."""
        self._router.close(wait=wait)

    async def aclose(self, *, wait: bool = True) -> None:
        """Finish (or cancel) background probes, then close the store."""
        await self._router.aclose(wait=wait)

    @property
    def metadata(self) -> LLMMetadata:
        """The most restrictive of the inner models: every call may land on any of them."""
        metas = [llm.metadata for llm in self._llms.values()]
        outputs = [m.num_output for m in metas if m.num_output and m.num_output > 0]
        return LLMMetadata(
            context_window=min(m.context_window for m in metas),
            num_output=min(outputs) if outputs else -1,
            is_chat_model=all(m.is_chat_model for m in metas),
            is_function_calling_model=all(m.is_function_calling_model for m in metas),
            model_name="smart-llm",
            system_role=metas[0].system_role or MessageRole.SYSTEM,
        )

    # -- the eight entry points (no callback decorators: the inner LLM emits the events) ------

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._serve("chat", list(messages), kwargs)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._aserve("chat", list(messages), kwargs)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._serve_stream("chat", list(messages), kwargs)

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        return await self._aserve_stream("chat", list(messages), kwargs)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._serve("complete", (prompt, formatted), kwargs)

    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return await self._aserve("complete", (prompt, formatted), kwargs)

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return self._serve_stream("complete", (prompt, formatted), kwargs)

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await self._aserve_stream("complete", (prompt, formatted), kwargs)

    # -- tools -----------------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Keep the tools provider-neutral: the routed inner LLM formats them for its API."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        return {
            "messages": messages,
            "tools": list(tools),
            "tool_required": tool_required,
            "allow_parallel_tool_calls": allow_parallel_tool_calls,
            "verbose": verbose,
            **kwargs,
        }

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """Parsed by the inner LLM that produced ``response`` (read from its routing record)."""
        info = (response.additional_kwargs or {}).get(SMART_KEY) or {}
        llm = self._llms.get(info.get("route") or "", self._llms[self._reference_name])
        return llm.get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )

    # -- calling one inner LLM ---------------------------------------------------------------------

    def _bind(self, name: str) -> LLM:
        llm = self._llms[name]
        if llm.callback_manager is not self.callback_manager:
            llm.callback_manager = self.callback_manager
        return llm

    @staticmethod
    def _split_tools(kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """``(tools, tool options, other kwargs)``; tools None unless neutral BaseTools."""
        kwargs = dict(kwargs)
        tools = kwargs.get("tools")
        if tools is None or not _is_tool_list(tools):
            for option in _TOOL_OPTIONS:  # only meaningful together with neutral tools
                kwargs.pop(option, None)
            return None, {}, kwargs
        kwargs.pop("tools")
        options = {o: kwargs.pop(o) for o in _TOOL_OPTIONS if o in kwargs}
        return tools, options, kwargs

    def _call(self, llm: LLM, kind: str, payload: Any, kwargs: dict[str, Any], stream: bool) -> Any:
        if kind == "chat":
            tools, options, rest = self._split_tools(kwargs)
            if tools is not None:
                fn = llm.stream_chat_with_tools if stream else llm.chat_with_tools
                return fn(tools, chat_history=list(payload), **options, **rest)
            return (llm.stream_chat if stream else llm.chat)(payload, **rest)
        prompt, formatted = payload
        fn = llm.stream_complete if stream else llm.complete
        return fn(prompt, formatted=formatted, **kwargs)

    async def _acall(
        self, llm: LLM, kind: str, payload: Any, kwargs: dict[str, Any], stream: bool
    ) -> Any:
        if kind == "chat":
            tools, options, rest = self._split_tools(kwargs)
            if tools is not None:
                fn = llm.astream_chat_with_tools if stream else llm.achat_with_tools
                return await fn(tools, chat_history=list(payload), **options, **rest)
            return await (llm.astream_chat if stream else llm.achat)(payload, **rest)
        prompt, formatted = payload
        fn = llm.astream_complete if stream else llm.acomplete
        return await fn(prompt, formatted=formatted, **kwargs)

    def _asked(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The inner call's kwargs for ``name``: with ``logprobs`` when a step reads them."""
        if name in self._logprob_models and "logprobs" not in kwargs:
            return {**kwargs, "logprobs": True}
        return kwargs

    def _answer(
        self, name: str, kind: str, payload: Any, response: Any, raws: Sequence[Any] = ()
    ) -> Answer:
        calls = None
        if kind == "chat" and isinstance(response, ChatResponse):
            llm = self._llms[name]
            if isinstance(llm, FunctionCallingLLM):
                try:
                    calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
                except Exception:
                    calls = None
        text = prompt_text(payload if kind == "chat" else payload[0])
        answer = answer_from_response(response, name, prompt=text, tool_calls=calls)
        if name in self._logprob_models:
            answer.logprobs = logprobs_from_raw(raws or (getattr(response, "raw", None),))
        return answer

    def _respond(self, name: str, kind: str, payload: Any, kwargs: dict[str, Any]) -> Answer:
        """``name``'s answer to the user, through the inner LLM's own instrumented method."""
        response = self._call(self._bind(name), kind, payload, self._asked(name, kwargs), False)
        answer = self._answer(name, kind, payload, response)
        answer.raw = response
        return answer

    async def _arespond(self, name: str, kind: str, payload: Any, kwargs: dict[str, Any]) -> Answer:
        llm, asked = self._bind(name), self._asked(name, kwargs)
        response = await self._acall(llm, kind, payload, asked, stream=False)
        answer = self._answer(name, kind, payload, response)
        answer.raw = response
        return answer

    def _probe(self, name: str, kind: str, payload: Any, kwargs: dict[str, Any]) -> Answer:
        with _silence.silenced():
            llm, asked = self._probe_llms[name], self._asked(name, kwargs)
            response = self._call(llm, kind, payload, asked, stream=False)
            return self._answer(name, kind, payload, response)

    async def _aprobe(self, name: str, kind: str, payload: Any, kwargs: dict[str, Any]) -> Answer:
        with _silence.silenced():
            llm, asked = self._probe_llms[name], self._asked(name, kwargs)
            response = await self._acall(llm, kind, payload, asked, stream=False)
            return self._answer(name, kind, payload, response)

    def _streamed(self, name: str, kind: str, payload: Any, chunks: list[Any]) -> Answer | None:
        """A stream's answer is its last response (LlamaIndex's are cumulative); an empty
        stream has nothing to record."""
        if not chunks:
            return None
        raws = tuple(getattr(c, "raw", None) for c in chunks)
        return self._answer(name, kind, payload, chunks[-1], raws)

    # -- serving: the serving flow, run by the router's drivers ----------------------------------

    @staticmethod
    def _options(
        kwargs: dict[str, Any],
    ) -> tuple[str | None, str | None, dict[str, Any], dict[str, Any]]:
        """The task, the request id, the kwargs for the inner LLMs, the cache keywords."""
        kwargs = dict(kwargs)
        task = kwargs.pop(_TASK_KWARG, None)
        if task is not None:
            check_task(task, "llm.chat(messages, smart_task='support-rag')")
        request_id = kwargs.pop(_REQUEST_ID_KWARG, None) or uuid.uuid4().hex
        cache = {k: kwargs.pop(k) for k in CACHE_KWARGS if k in kwargs}
        return task, request_id, kwargs, cache

    def _request_cache(
        self, kind: str, payload: Any, kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        """This request's view of the answer cache; None when it is off or ``smart_cache=False``."""
        if self._router.cache is None or options.get("smart_cache") is False:
            return None
        for key in ("smart_tenant", "smart_user"):
            if not isinstance(options.get(key), str | None):
                raise ValueError(
                    f"{key} must be a string, got {options[key]!r}; e.g. llm.chat(messages, "
                    f"{key}='acme')"
                )
        request = cache_request(kind, payload, kwargs)
        return self._router.request_cache(
            request,
            tenant=options.get("smart_tenant"),
            user=options.get("smart_user"),
            codec=ResponseCodec(kind),
            **semantic_parts(request),
        )

    def _serve(self, kind: str, payload: Any, kwargs: dict[str, Any]) -> Any:
        task, request_id, kwargs, options = self._options(kwargs)
        calls = Calls(
            lambda m: self._respond(m, kind, payload, kwargs),
            lambda m: self._probe(m, kind, payload, kwargs),
            cache=self._request_cache(kind, payload, kwargs, options),
            request=neutral_request(kind, payload),
        )
        routed = self._router.serve(calls, task=task, request_id=request_id)
        return _tag(routed.answer.raw, routed.record())

    async def _aserve(self, kind: str, payload: Any, kwargs: dict[str, Any]) -> Any:
        task, request_id, kwargs, options = self._options(kwargs)
        calls = Calls(
            lambda m: self._arespond(m, kind, payload, kwargs),
            lambda m: self._aprobe(m, kind, payload, kwargs),
            cache=self._request_cache(kind, payload, kwargs, options),
            request=neutral_request(kind, payload),
        )
        routed = await self._router.aserve(calls, task=task, request_id=request_id)
        return _tag(routed.answer.raw, routed.record())

    # A stream is begun and read up to its first chunk shown to the user before the call
    # returns, as LlamaIndex's own LLMs do: a failure before that raises (or falls back) here.

    def _serve_stream(self, kind: str, payload: Any, kwargs: dict[str, Any]) -> Any:
        task, request_id, kwargs, options = self._options(kwargs)
        calls = Calls(
            call=lambda m: self._call(self._bind(m), kind, payload, self._asked(m, kwargs), True),
            probe=lambda m: self._probe(m, kind, payload, kwargs),
            streamed=lambda m, chunks: self._streamed(m, kind, payload, chunks),
            shows=_has_content,
            cache=self._request_cache(kind, payload, kwargs, options),
            request=neutral_request(kind, payload),
        )
        relayed = self._router.serve_stream(calls, task=task, request_id=request_id)
        first = next(relayed, None)
        return _relay(first, relayed)

    async def _aserve_stream(self, kind: str, payload: Any, kwargs: dict[str, Any]) -> Any:
        task, request_id, kwargs, options = self._options(kwargs)
        calls = Calls(
            call=lambda m: self._acall(self._bind(m), kind, payload, self._asked(m, kwargs), True),
            probe=lambda m: self._aprobe(m, kind, payload, kwargs),
            streamed=lambda m, chunks: self._streamed(m, kind, payload, chunks),
            shows=_has_content,
            cache=self._request_cache(kind, payload, kwargs, options),
            request=neutral_request(kind, payload),
        )
        relayed = self._router.aserve_stream(calls, task=task, request_id=request_id)
        first = await anext(relayed, None)
        return _arelay(first, relayed)


# -- helpers ---------------------------------------------------------------------------------------


def _has_content(chunk: Any) -> bool:
    """Whether a streamed chunk shows the user anything: text, a tool call or another block."""
    if getattr(chunk, "delta", None):
        return True
    message = getattr(chunk, "message", None)
    if message is None:
        return False
    if any(getattr(b, "block_type", "text") != "text" for b in message.blocks):
        return True
    return bool((message.additional_kwargs or {}).get("tool_calls"))


def _relay(
    first: Streamed | None, rest: Generator[Streamed, None, None]
) -> Generator[Any, None, None]:
    if first is None:
        return
    yield _tagged(first)
    for item in rest:
        yield _tagged(item)


async def _arelay(
    first: Streamed | None, rest: AsyncGenerator[Streamed, None]
) -> AsyncGenerator[Any, None]:
    if first is None:
        return
    yield _tagged(first)
    async for item in rest:
        yield _tagged(item)


def _tagged(item: Streamed) -> Any:
    """Every chunk says who answers; the last one also the cost and the certificate."""
    if item.routed is None:
        return _tag(item.chunk, _head(item.ticket))
    return _tag(item.chunk, item.routed.record())


def _head(ticket: Ticket) -> dict[str, Any]:
    """What every chunk of a stream carries: who is answering and which request this is."""
    return {
        "route": ticket.route,
        "probe": ticket.probe,
        "fallback": ticket.fallback,
        "request_id": ticket.request_id,
        "task": ticket.task,
    }


def _tag(response: Any, record: dict[str, Any]) -> Any:
    response.additional_kwargs = {**(response.additional_kwargs or {}), SMART_KEY: record}
    return response


def _takes_logprobs(llm: LLM) -> bool:
    """Whether ``llm`` passes ``logprobs=True`` on to a chat API that returns them (LlamaIndex's
    OpenAI classes, and the OpenAI-compatible ones built on them)."""
    if "logprobs" not in type(llm).model_fields:
        return False
    try:
        return bool(llm.metadata.is_chat_model)
    except Exception:
        return False


def _silent_copy(llm: LLM) -> LLM:
    copy = llm.model_copy()
    copy.callback_manager = _silence.silent_callback_manager()
    return copy
