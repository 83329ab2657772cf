"""``smart serve``: an OpenAI-compatible Chat Completions server in front of SMART.

Any OpenAI client reaches SMART by changing its ``base_url``: each request is served through the
serving flow (:mod:`smart_core.engine.flow`) of its task's router, whose routes call the
upstream providers with the request as it came (messages, tools, response_format, sampling
parameters). The answer comes back in OpenAI's shape, with SMART's routing record under a
``smart`` field of the body (on the last chunk of a stream) and in ``x-smart-*`` headers.

The task of a request is the ``x-smart-task`` header, else the requested ``model`` when a task
has that name, else the default task. A task with an answer cache (``cache = "exact"`` or
``"semantic"``) serves a request from it in the namespace its ``x-smart-tenant`` and
``x-smart-user`` headers name (:mod:`.completion_cache`). Client API keys are never read, logged
or stored; the upstream keys come from the server's environment.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..engine.drivers import Calls, Streamed
from ..engine.router import SmartRouter
from ..engine.ticket import Routed, Ticket
from ..errors import SmartError
from ..providers.chat_completions import (
    UnsupportedRequest,
    answer_from_chunks,
    answer_from_completion,
    complete,
    stream,
)
from ..providers.sdk import AnthropicProvider, OpenAIProvider, ProviderError
from ..task.answer import Answer
from .completion_cache import InvalidCacheRequest, request_cache
from .embeddings import UpstreamEmbedder
from .metrics import LedgerCollector

__all__ = ["TASK_HEADER", "create_app"]

#: Request header choosing the task; response headers carry the routing record.
TASK_HEADER = "x-smart-task"

_log = logging.getLogger("smart_core.proxy")

Provider = OpenAIProvider | AnthropicProvider


def create_app(
    routers: Mapping[str, SmartRouter],
    providers: Mapping[str, Provider],
    *,
    default_task: str | None = None,
    embedders: Sequence[UpstreamEmbedder] = (),
) -> Starlette:
    """The proxy's ASGI app: ``routers`` by task name, ``providers`` by model name (the names
    the routers' configs use), ``embedders`` the routers' upstream embedding models. All are
    closed when the app shuts down."""
    if not routers:
        raise SmartError("smart serve needs at least one task")
    default = default_task or next(iter(routers))
    if default not in routers:
        raise SmartError(f"default task {default!r} is not among the tasks {sorted(routers)}")
    registry = CollectorRegistry()
    registry.register(LedgerCollector(routers))
    served = Counter(
        "smart_proxy_requests",
        "Chat Completions requests handled by this process, by task and HTTP status.",
        ["task", "status"],
        registry=registry,
    )
    proxy = _Proxy(routers, providers, default, served)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for router in routers.values():
            await router.aclose()
        for provider in providers.values():
            await provider.aclose()
        for embedder in embedders:
            await embedder.aclose()

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "tasks": sorted(routers)})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", proxy.chat, methods=["POST"]),
            Route("/chat/completions", proxy.chat, methods=["POST"]),
            Route("/v1/models", proxy.models, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


class _Proxy:
    def __init__(
        self,
        routers: Mapping[str, SmartRouter],
        providers: Mapping[str, Provider],
        default: str,
        served: Counter,
    ) -> None:
        self.routers = routers
        self.providers = providers
        self.default = default
        self.served = served

    async def models(self, request: Request) -> Response:
        """Every task is a model a client may ask for (as are the upstream models, for SDKs
        that check the list)."""
        now = int(time.time())
        names = [*self.routers, *(m for m in self.providers if m not in self.routers)]
        data = [{"id": n, "object": "model", "created": now, "owned_by": "smart"} for n in names]
        return JSONResponse({"object": "list", "data": data})

    async def chat(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the request body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "messages: a Chat Completions request needs a list of messages")
        task = request.headers.get(TASK_HEADER) or (
            body.get("model") if body.get("model") in self.routers else self.default
        )
        if task not in self.routers:
            return _error(404, f"{TASK_HEADER}: no task {task!r}; tasks: {sorted(self.routers)}")
        router = self.routers[task]
        try:
            cache = request_cache(router, body, request.headers)
        except InvalidCacheRequest as exc:
            return self._failed(task, exc)
        if body.get("stream"):
            return await self._stream(task, router, body, cache)
        try:
            routed = await router.aserve(self._calls(body, cache), task=task)
        except Exception as exc:
            return self._failed(task, exc)
        completion = dict(routed.answer.raw)
        completion["model"] = routed.route
        completion["smart"] = routed.record()
        self.served.labels(task, "200").inc()
        return JSONResponse(completion, headers=_headers(routed.certificate.task, routed))

    async def _stream(
        self, task: str, router: SmartRouter, body: dict[str, Any], cache: Any
    ) -> Response:
        calls = Calls(
            call=lambda model: stream(self.providers[model], body),
            probe=lambda model: self._answer(model, body),
            streamed=answer_from_chunks,
            shows=_shows,
            cache=cache,
            request=body.get("messages"),  # what request-aware cascade scorers read
        )
        relayed = router.aserve_stream(calls, task=task)
        try:  # decide and open the upstream stream before any header is sent
            first = await anext(relayed, None)
        except Exception as exc:
            return self._failed(task, exc)
        if first is None:
            return _error(502, "the upstream model returned an empty stream")
        self.served.labels(task, "200").inc()

        async def events() -> AsyncIterator[str]:
            try:
                yield _event(first)
                async for item in relayed:
                    yield _event(item)
            except Exception as exc:  # the user has part of the answer: say why it stopped
                _log.warning("task %r: stream cut: %s", task, _safe(exc))
                yield "data: " + json.dumps({"error": {"message": _safe(exc)}}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers=_headers(task, first.ticket)
        )

    def _calls(self, body: dict[str, Any], cache: Any) -> Calls:
        def call(model: str) -> Any:
            return self._answer(model, body)

        return Calls(call, call, cache=cache, request=body.get("messages"))

    async def _answer(self, model: str, body: dict[str, Any]) -> Answer:
        completion = await complete(self.providers[model], body)
        return answer_from_completion(model, completion)

    def _failed(self, task: str, exc: BaseException) -> Response:
        if isinstance(exc, UnsupportedRequest | InvalidCacheRequest):
            status = 400
        elif isinstance(exc, ProviderError) and exc.status and 400 <= exc.status < 500:
            status = exc.status
        elif isinstance(exc, SmartError | ProviderError):
            status = 502
        else:
            _log.exception("task %r: request failed", task)
            status = 500
        self.served.labels(task, str(status)).inc()
        return _error(status, _safe(exc))


def _shows(chunk: Mapping[str, Any]) -> bool:
    """A chunk the client would show: text or a tool call (not a role-only or usage chunk)."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls"):
            return True
    return False


def _event(item: Streamed) -> str:
    chunk = dict(item.chunk) if item.chunk is not None else {"object": "chat.completion.chunk"}
    chunk["model"] = item.ticket.route
    if item.routed is not None:
        chunk["smart"] = item.routed.record()
    return "data: " + json.dumps(chunk) + "\n\n"


def _headers(task: str, served: Routed | Ticket) -> dict[str, str]:
    """``x-smart-*`` headers: known once the request is decided (a stream sends them before its
    first chunk, so the cost, known at the end, is only in the body)."""
    cert = served.certificate
    headers = {
        "x-smart-task": task,
        "x-smart-route": served.route,
        "x-smart-probe": str(served.probe).lower(),
        "x-smart-request-id": served.request_id,
        "x-smart-bound": f"{cert.bound:.6f}",
        "x-smart-epsilon": f"{cert.epsilon:g}",
        "x-smart-delta": f"{cert.delta:g}",
        "x-smart-mode": cert.mode,
    }
    if isinstance(served, Routed):
        headers["x-smart-cost"] = f"{served.cost:.8f}"
        headers["x-smart-fallback"] = str(served.fallback).lower()
    return headers


def _error(status: int, message: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "upstream_error"
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def _safe(exc: BaseException) -> str:
    """The error's message (providers scrub keys from theirs)."""
    return str(exc) or type(exc).__name__
