"""``SmartChatModel``: a LangChain chat model that routes each call under SMART's guarantee.

Delegation is "single-run" (one traced run per user call): the routed inner model's
``_generate_with_cache`` / ``_agenerate_with_cache`` / ``_stream`` / ``_astream`` is called with
this model's own run manager, so a user call is one traced LLM run whose usage is counted once.
Probe calls to candidates get no run manager at all: they are invisible to the user's callbacks
and tracers, and their cost goes to SMART's ledger only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from pydantic import PrivateAttr

from smart_core import ConfigError, Ledger, Routed, SmartConfig, SmartRouter
from smart_core.engine.framework_adapter import check_task, config_for, model_name_of
from smart_core.task.cascades import logprob_models

from ._batch_order import drawn_order, in_input_order
from ._cache import (
    embedder_of,
    metadata_kwargs,
)
from ._convert import (
    MessageMatch,
)
from ._inner_calls import TASK_KEY, InnerCalls
from ._tools import ToolsAndStructuredOutput
from ._usage import UsageWarnings, reporting_usage

__all__ = ["SmartChatModel"]


def _model_name(model: Any, where: str) -> str:
    name = model_name_of(model)
    if not name:
        raise ConfigError(
            f"{where}: cannot tell which model this {type(model).__name__} calls (it has no "
            "`model_name` or `model` string); SMART keys prices and statistics by model name, so "
            "set the inner model's `model=`"
        )
    return name


class SmartChatModel(InnerCalls, ToolsAndStructuredOutput, BaseChatModel):
    """A drop-in chat model that sends each request to the cheapest model allowed by SMART.

    At most a share ``epsilon`` of answers differ from the ``reference`` model's, with
    confidence ``1 - delta``: SMART profiles the ``candidates`` on live traffic (probes call the
    reference and candidates together; the user gets the reference's answer), mixes them so the
    bound holds, and keeps auditing. Every answer carries ``response_metadata["smart"]``: the
    certificate (route, mix, bound, probes so far, epsilon, delta), the request id and its cost.

    Example:
        ```python
        llm = SmartChatModel(
            reference=ChatOpenAI(model="gpt-4o"),
            candidates=[ChatOpenAI(model="gpt-4o-mini"),
                        ChatAnthropic(model="claude-3-5-haiku-latest")],
            epsilon=0.05, delta=0.05, task="ticket-triage", store="sqlite:///smart.db",
        )
        chain = prompt | llm | StrOutputParser()
        ```

    The task of a call is, in order: ``config={"metadata": {"smart_task": ...}}`` (also through
    ``with_config`` or a chain's config), a ``smart_task=`` call kwarg, else ``task``.
    """

    reference: BaseChatModel
    """The model whose answers define "correct" (e.g. ``ChatOpenAI(model="gpt-4o")``)."""
    candidates: list[BaseChatModel]
    """Cheaper chat models SMART may route to; at least one, each with a distinct model name."""
    epsilon: float
    """Allowed share of answers that differ from the reference's, in (0, 1)."""
    delta: float = 0.05
    """Allowed probability that the epsilon guarantee fails, in (0, 1)."""
    task: str = "default"
    """Default task: requests of one purpose (one prompt template) whose statistics are shared."""
    store: Any = "memory://"
    """State store URL (``memory://``, ``sqlite:///smart.db``) or a ``smart_core`` Store."""
    expected_requests: int | None = None
    """Expected number of requests, so SMART can judge whether profiling pays for itself."""
    batch_size: int | None = None
    """Known number of requests of a batch job (batch mode); None for online serving."""
    audit_rate: float | None = None
    """Share of routed requests re-checked against the reference (default 0.01 online)."""
    comparator: Any = None
    """When two answers agree: a smart_core comparator spec (``exact``, ``choice:A,B``, ``json``,
    ``tool_calls``, ...), a Comparator or a function; default :class:`MessageMatch` (tool calls,
    JSON and text compared canonically)."""
    prices: dict[str, Any] | None = None
    """Price overrides in USD per 1M tokens by model name, e.g. ``{"my-model": (1.0, 4.0)}``."""
    method: Literal["anytime", "clopper-pearson"] = "anytime"
    """Confidence bound; ``anytime`` stays valid however often it is checked."""
    delta_weights: dict[str, float] | None = None
    """How delta is split over the candidates (positive weights by name); default equal."""
    cascades: Any = None
    """Cascades routed to besides the candidates, each measured on probes like a candidate:
    ``"auto"`` or a list of ``smart_core`` ``Cascade`` (docs/cascades.md); default none."""
    threshold_families: Literal["union", "fixed-sequence"] = "union"
    """How a grid of one cascade's thresholds is certified online: ``union`` (default), each
    threshold its own share of delta; ``fixed-sequence``, the grid one share (docs/cascades.md,
    "Known limits": it saved no more in the simulations measured)."""
    seed: int | None = None
    """Seed for the route draws (reproducible tests)."""
    wait_for_probes: bool = False
    """Wait for probe candidates before returning (batch jobs); default: record in background."""
    temperature: float | None = None
    """If set, sent as ``temperature`` with every inner call."""
    max_tokens: int | None = None
    """If set, sent as ``max_tokens`` with every inner call."""
    stop: list[str] | None = None
    """Default stop sequences for every inner call."""
    streaming: bool = False
    """Stream from the inner model even on ``invoke`` (tokens reach callbacks as they come)."""
    # ``cache="exact"`` turns SMART's answer cache on (docs/cache.md); it replaces LangChain's own
    # ``cache`` field, which stays available with a BaseCache or a bool.
    cache_answers: Literal["shared", "per_user"] = "shared"
    """With ``cache="exact"``: ``shared``, a tenant's users are served each other's cached
    answers to identical requests; ``per_user``, only their own (``smart_user`` in the run
    metadata; a request naming no user skips the cache)."""
    tenant: str = "default"
    """Tenant of requests whose run metadata names none (``smart_tenant``)."""
    cache_ttl_seconds: float | None = 7 * 24 * 3600.0
    """How long a cached answer is served (default 7 days; None: until evicted)."""
    cache_max_entries: int = 100_000
    """Cached answers kept per task in the store."""
    cache_similarities: tuple[float, ...] = (0.8, 0.85, 0.9, 0.95)
    """With ``cache="semantic"``: a route ``cache:semantic@s`` per threshold, certified on probes
    like a candidate (docs/cache.md)."""
    embeddings: Any = None
    """With ``cache="semantic"``: a LangChain ``Embeddings`` comparing the last user message with
    earlier ones (default: SMART's offline hashed n-gram embedder)."""

    _config: SmartConfig = PrivateAttr()
    _router: SmartRouter = PrivateAttr()
    _models: dict[str, BaseChatModel] = PrivateAttr()
    _logprob_models: frozenset[str] = PrivateAttr(default=frozenset())
    _usage_warnings: UsageWarnings = PrivateAttr(default_factory=UsageWarnings)

    def __init__(self, **kwargs: Any) -> None:
        answer_cache = kwargs.get("cache")
        if isinstance(answer_cache, str):  # SMART's answer cache, not LangChain's BaseCache
            kwargs["cache"] = None
        super().__init__(**kwargs)
        self._models = self._named_models()
        names = list(self._models)
        self._config = config_for(
            "SmartChatModel",
            names,
            {n: self._field(i) for i, n in enumerate(names)},
            sources={n: self._source(n) for n in names},
            prices=self.prices,
            task=self.task,
            epsilon=self.epsilon,
            delta=self.delta,
            expected_requests=self.expected_requests,
            batch_size=self.batch_size,
            audit_rate=self.audit_rate,
            comparator=MessageMatch() if self.comparator is None else self.comparator,
            method=self.method,
            delta_weights=self.delta_weights,
            cascades=self.cascades,
            threshold_families=self.threshold_families,
            store=self.store if isinstance(self.store, str) else "memory://",
            cache=answer_cache if isinstance(answer_cache, str) else "off",
            cache_answers=self.cache_answers,
            tenant=self.tenant,
            cache_ttl_seconds=self.cache_ttl_seconds,
            cache_max_entries=self.cache_max_entries,
            cache_similarities=self.cache_similarities,
        )
        self._router = SmartRouter(
            self._config, store=self.store, seed=self.seed, embedder=embedder_of(self.embeddings)
        )
        self._router.wait_for_probes = self.wait_for_probes
        self._logprob_models = logprob_models(self._config.cascade_list())

    def _named_models(self) -> dict[str, BaseChatModel]:
        models: dict[str, BaseChatModel] = {}
        where: dict[str, str] = {}
        pairs = [("reference", self.reference)]
        pairs += [(f"candidates[{i}]", m) for i, m in enumerate(self.candidates)]
        for field, model in pairs:
            if isinstance(model, SmartChatModel):
                raise ConfigError(f"{field}: a SmartChatModel cannot route to another one")
            name = _model_name(model, field)
            if name in models:
                raise ConfigError(
                    f"{field} and {where[name]} both call model {name!r}; SMART keeps prices "
                    "and statistics per model name, so every model must be distinct: remove "
                    f"the duplicate or point {field} at another model"
                )
            models[name] = reporting_usage(model)  # a stream priced at $0 would hide savings
            where[name] = field
        return models

    @staticmethod
    def _field(i: int) -> str:
        return "reference" if i == 0 else f"candidates[{i - 1}]"

    def _source(self, name: str) -> str:
        model = self._models[name]
        attr = "model_name" if hasattr(model, "model_name") else "model"
        return f"{type(model).__name__}.{attr}"

    # -- what users read -----------------------------------------------------------------------

    @property
    def router(self) -> SmartRouter:
        """The :class:`smart_core.SmartRouter` doing the routing (policy, store, ledger)."""
        return self._router

    @property
    def config(self) -> SmartConfig:
        """The validated :class:`smart_core.SmartConfig` built from this model's fields."""
        return self._config

    @property
    def models(self) -> Mapping[str, BaseChatModel]:
        """Inner models by name, reference first, as SMART calls them.

        A model whose ``stream_usage`` was left unset is the copy that reports usage on streams.
        """
        return dict(self._models)

    def ledger(self, task: str | None = None) -> Ledger:
        """Spend, savings, mix and bounds of ``task`` (default: ``self.task``) from the store."""
        return self._router.ledger(task)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every probe started by synchronous calls has been recorded."""
        self._router.flush(timeout)

    async def aflush(self) -> None:
        """Wait until every background probe (async or threaded) has been recorded."""
        await self._router.aflush()

    def close(self) -> None:
        """Record pending threaded probes and close the store."""
        self._router.close()

    async def aclose(self) -> None:
        """Record pending background probes and close the store."""
        await self._router.aclose()

    # -- LangChain plumbing --------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "smart-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        names = list(self._models)
        return {
            "reference": names[0],
            "candidates": names[1:],
            "task": self.task,
            "epsilon": self.epsilon,
            "delta": self.delta,
        }

    def _resolve_model_profile(self) -> Any:
        """What every inner model can do: capabilities ANDed, limits at their minimum."""
        profiles = [getattr(m, "profile", None) for m in (self.reference, *self.candidates)]
        if not profiles or any(not p for p in profiles):
            return None
        merged: dict[str, Any] = {}
        for key in set.intersection(*(set(p) for p in profiles)):
            values = [p[key] for p in profiles]
            if all(isinstance(v, bool) for v in values):
                merged[key] = all(values)
            elif all(isinstance(v, int) for v in values):
                merged[key] = min(values)
        return merged or None

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="smart",
            ls_model_name=kwargs.get("model") or f"smart:{next(iter(self._models))}",
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stop = stop or kwargs.get("stop") or self.stop
        if stop:
            params["ls_stop"] = list(stop)
        return params

    # The task of a call lives in its config's metadata, which `.stream()` never hands to
    # `_stream`; these thin overrides turn it into a call kwarg every path sees.

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return super().invoke(input, config, stop=stop, **_task_kwarg(config, kwargs))

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return await super().ainvoke(input, config, stop=stop, **_task_kwarg(config, kwargs))

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """In batch mode (``batch_size``) the inputs are served in an order SMART draws, blind to
        their content, as the batch guarantee needs; outputs come back in input order."""
        if self.batch_size is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        order, items, configs = drawn_order(inputs, config, self.router.rng)
        with self.router.shuffled_batch():
            out = super().batch(items, configs, return_exceptions=return_exceptions, **kwargs)
        return in_input_order(out, order)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        if self.batch_size is None:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        order, items, configs = drawn_order(inputs, config, self.router.rng)
        with self.router.shuffled_batch():
            out = await super().abatch(
                items, configs, return_exceptions=return_exceptions, **kwargs
            )
        return in_input_order(out, order)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        return super().stream(input, config, stop=stop, **_task_kwarg(config, kwargs))

    def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        return super().astream(input, config, stop=stop, **_task_kwarg(config, kwargs))

    # -- preparing one inner call --------------------------------------------------------------

    def _task_of(self, kwargs: Mapping[str, Any], run_manager: Any) -> str:
        task = kwargs.get(TASK_KEY)
        if not task and run_manager is not None:
            task = (getattr(run_manager, "metadata", None) or {}).get(TASK_KEY)
        example = "config={'metadata': {'smart_task': 'ticket-triage'}}"
        return check_task(task or self.task, example)

    def _forced(self, kwargs: Mapping[str, Any]) -> str | None:
        """``model=`` picks an inner model directly (outside the guarantee and the ledger)."""
        model = kwargs.get("model")
        if model is None:
            return None
        if model not in self._models:
            raise ValueError(
                f"model={model!r} is not one of this SmartChatModel's models "
                f"{list(self._models)}; omit model= to let SMART route"
            )
        return str(model)

    def _metadata(self, routed: Routed) -> dict[str, Any]:
        meta = routed.certificate.to_dict()
        meta.update(
            route=routed.route,
            probe=routed.probe,
            fallback=routed.fallback,
            request_id=routed.request_id,
            cost=routed.cost,
        )
        return meta

    def _result(self, routed: Routed) -> ChatResult:
        """The routed model's ``ChatResult``, its message carrying the certificate."""
        result: ChatResult = routed.answer.raw
        result.generations[0].message.response_metadata["smart"] = self._metadata(routed)
        return result

    # -- generate and stream: the serving flow, run by the router's drivers ------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stop = self._stop(stop)
        calls = self._calls(messages, stop, run_manager, kwargs)
        forced = self._forced(kwargs)
        if forced is not None:
            return calls.call(forced).raw
        task = self._task_of(kwargs, run_manager)
        return self._result(self._router.serve(calls, task=task))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stop = self._stop(stop)
        calls = self._acalls(messages, stop, run_manager, kwargs)
        forced = self._forced(kwargs)
        if forced is not None:
            return (await calls.call(forced)).raw
        task = self._task_of(kwargs, run_manager)
        return self._result(await self._router.aserve(calls, task=task))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        stop = self._stop(stop)
        forced = self._forced(kwargs)
        if forced is not None:
            yield from self._inner_stream(forced, messages, stop, run_manager, kwargs)
            return
        calls = self._stream_calls(messages, stop, run_manager, kwargs, is_async=False)
        task = self._task_of(kwargs, run_manager)
        for out in self._router.serve_stream(calls, task=task):
            yield out.chunk if out.routed is None else self._last(out.chunk, out.routed)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        stop = self._stop(stop)
        forced = self._forced(kwargs)
        if forced is not None:
            async for chunk in self._inner_astream(forced, messages, stop, run_manager, kwargs):
                yield chunk
            return
        calls = self._stream_calls(messages, stop, run_manager, kwargs, is_async=True)
        task = self._task_of(kwargs, run_manager)
        async for out in self._router.aserve_stream(calls, task=task):
            yield out.chunk if out.routed is None else self._last(out.chunk, out.routed)

    def _last(self, chunk: ChatGenerationChunk | None, routed: Routed) -> ChatGenerationChunk:
        return _annotated(chunk, self._metadata(routed))


def _task_kwarg(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Copy ``config["metadata"]["smart_task"]`` into the call kwargs (metadata wins)."""
    metadata = (config or {}).get("metadata") or {}
    kwargs = metadata_kwargs(metadata, kwargs)  # smart_tenant, smart_user, smart_cache
    task = metadata.get(TASK_KEY)
    if task:
        return {**kwargs, TASK_KEY: task}
    return kwargs


def _annotated(chunk: ChatGenerationChunk | None, meta: dict[str, Any]) -> ChatGenerationChunk:
    """The stream's final chunk, carrying the certificate.

    It is marked ``chunk_position="last"``; otherwise LangChain's ``stream()`` appends an empty
    final chunk of its own, and ``chunks[-1]`` would lack the certificate.
    """
    if chunk is None:
        chunk = ChatGenerationChunk(message=AIMessageChunk(content=""))
    chunk.message.response_metadata = {**chunk.message.response_metadata, "smart": meta}
    if isinstance(chunk.message, AIMessageChunk):
        chunk.message.chunk_position = "last"
    return chunk
