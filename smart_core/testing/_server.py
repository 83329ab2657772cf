"""The HTTP server: a Starlette app on uvicorn in a daemon thread, speaking the OpenAI Chat
Completions and Anthropic Messages APIs on 127.0.0.1, so the official SDKs and every client
built on them run unchanged against scripted models."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any, Literal, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import _anthropic_wire, _embeddings, _openai_wire
from ._behaviour import Behaviour, Responder, as_behaviour, respond
from ._echo import echo
from ._faults import Fault, FaultKind
from ._prompt import Prompt
from ._reply import BadRequest, complete

__all__ = ["FakeLLMServer", "RequestRecord"]

Api = Literal["openai", "anthropic"]
_WIRES: dict[str, ModuleType] = {"openai": _openai_wire, "anthropic": _anthropic_wire}
_POLL = 0.05  # seconds between checks for a departed client or a stopping server


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the server received, for tests that count or inspect calls.

    ``status`` is the HTTP status the server answered (or would have, had the client waited);
    ``fault`` names the injected fault, if any; ``call`` is the request's number among calls to
    the same model (what fault schedules count). A body that could not be read (HTTP 400) has
    ``call`` 0 and ``prompt`` ``None``. ``body`` is the JSON the client sent; ``error`` the
    message of an error answer.
    """

    model: str
    api: Api
    stream: bool
    status: int
    fault: FaultKind | None
    call: int
    prompt: Prompt | None
    body: Any
    error: str | None = None


class _Truncated(Exception):
    """Raised inside the app to make uvicorn drop the connection mid-body."""


class _QuietTruncation(logging.Filter):
    """Keep uvicorn from logging a traceback for every deliberate truncation."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _is_truncation(record.exc_info[1] if record.exc_info else None)


def _is_truncation(exc: BaseException | None) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_truncation(e) for e in exc.exceptions)
    return isinstance(exc, _Truncated)


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietTruncation) for f in logger.filters):
        logger.addFilter(_QuietTruncation())


class _Stream:
    """An SSE response sent frame by frame, optionally cut after ``cut`` frames."""

    def __init__(
        self,
        frames: list[str],
        *,
        gap: float,
        pause: Callable[[float], Awaitable[bool]],
        cut: int | None = None,
    ) -> None:
        self.frames, self.gap, self.pause, self.cut = frames, gap, pause, cut

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, data in enumerate(self.frames):
            if i == self.cut:
                raise _Truncated
            if i and self.gap and not await self.pause(self.gap):
                raise _Truncated  # the server is stopping or the client left
            await send({"type": "http.response.body", "body": data.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _CutBody:
    """A JSON response that announces its full length, sends half and drops the connection."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = json.dumps(body, ensure_ascii=False).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise _Truncated


class FakeLLMServer:
    """A local OpenAI- and Anthropic-compatible server whose models are scripted.

    ``models`` maps a model name to a :class:`Behaviour`, a responder function of the
    :class:`Prompt`, or a fixed text; any other name gets ``default`` (:func:`echo`). Both are
    read on every request, so a test may change ``server.models`` while the server runs.

    Use it as a context manager (``with`` or ``async with``) or call :meth:`start` and
    :meth:`stop`. Point an OpenAI client at :attr:`openai_base_url` and an Anthropic client at
    :attr:`anthropic_base_url`; any API key is accepted.
    """

    def __init__(
        self,
        models: Mapping[str, Behaviour | Responder | str] | None = None,
        *,
        default: Behaviour | Responder | str = echo,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.models: dict[str, Behaviour | Responder | str] = dict(models or {})
        self.default = default
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._log: list[RequestRecord] = []
        self._calls: Counter[str] = Counter()
        self._number = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ],
            exception_handlers={404: self._not_found, 405: self._not_found},
        )

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (known once started, also when asked for port 0)."""
        if self._port is None:
            raise RuntimeError("FakeLLMServer is not running: call start() or use `with`")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for OpenAI clients (``url + "/v1"``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for Anthropic clients (``url``; the SDK appends ``/v1/messages``)."""
        return self.url

    # -- request log -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._log)

    def calls(self, model: str | None = None) -> int:
        """How many requests arrived (for ``model``, or in all)."""
        return sum(1 for r in self.requests if model is None or r.model == model)

    def reset(self) -> None:
        """Forget the request log and restart every model's call count (and so fault schedules)."""
        with self._lock:
            self._log.clear()
            self._calls.clear()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and serve in a daemon thread; returns once requests are accepted."""
        if self._thread is not None:
            return self
        _install_log_filter()
        # proto=IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections; without it
        # Nagle's algorithm holds each response body back ~40 ms behind its headers.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._closing.clear()
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="FakeLLMServer", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError("FakeLLMServer did not start (see the log for uvicorn's error)")
            time.sleep(0.002)
        self._server, self._thread, self._port = server, thread, sock.getsockname()[1]
        return self

    def stop(self) -> None:
        """Stop serving: requests still hanging or streaming are cut, then the thread ends."""
        if self._server is None or self._thread is None:
            return
        self._closing.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "stopped"
        return f"FakeLLMServer({where}, models={sorted(self.models)})"

    # -- request handling --------------------------------------------------------------------

    async def _openai(self, request: Request) -> Any:
        return await self._handle(request, "openai")

    async def _anthropic(self, request: Request) -> Any:
        return await self._handle(request, "anthropic")

    async def _embeddings(self, request: Request) -> JSONResponse:
        """OpenAI's Embeddings API (:mod:`._embeddings`): deterministic vectors, no behaviour
        or fault schedule; each request is logged with ``api="openai"`` under its model."""
        body: Any = None
        try:
            body = json.loads(await request.body())
            model, texts, dimensions, encoding = _embeddings.parse_embeddings_request(body)
        except (ValueError, BadRequest) as exc:
            message = str(exc) if isinstance(exc, BadRequest) else "the body is not valid JSON"
            model = body.get("model") if isinstance(body, dict) else None
            self._record(
                model=str(model or ""),
                api="openai",
                stream=False,
                status=400,
                fault=None,
                call=0,
                prompt=None,
                body=body,
                error=message,
            )
            error = _openai_wire.error_body("invalid_request", message)
            return JSONResponse(error, status_code=400)
        with self._lock:
            self._number += 1
            self._calls[model] += 1
            call = self._calls[model]
        self._record(
            model=model,
            api="openai",
            stream=False,
            status=200,
            fault=None,
            call=call,
            prompt=None,
            body=body,
        )
        return JSONResponse(_embeddings.embeddings_body(model, texts, dimensions, encoding))

    async def _not_found(self, request: Request, exc: Exception) -> JSONResponse:
        message = (
            f"{request.method} {request.url.path}: this fake serves POST /v1/chat/completions "
            f"(OpenAI clients: base_url={self.openai_base_url}) and POST /v1/messages "
            f"(Anthropic clients: base_url={self.anthropic_base_url})"
        )
        return JSONResponse(_openai_wire.error_body("invalid_request", message), status_code=404)

    async def _pause(self, seconds: float, request: Request) -> bool:
        """Wait ``seconds``; ``False`` as soon as the client leaves or the server is stopping."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._closing.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, _POLL))
            if await request.is_disconnected():
                return False
        return False

    def _record(self, **fields: Any) -> None:
        with self._lock:
            self._log.append(RequestRecord(**fields))

    async def _handle(self, request: Request, api: Api) -> Any:
        wire = _WIRES[api]
        body: Any = None
        try:
            body = json.loads(await request.body())
            prompt, options = wire.parse_request(body)
        except (ValueError, BadRequest) as exc:
            message = str(exc) if isinstance(exc, BadRequest) else "the body is not valid JSON"
            model = body.get("model") if isinstance(body, dict) else None
            self._record(
                model=str(model or ""),
                api=api,
                stream=False,
                status=400,
                fault=None,
                call=0,
                prompt=None,
                body=body,
                error=message,
            )
            return JSONResponse(wire.error_body("invalid_request", message), status_code=400)
        with self._lock:
            self._number += 1
            self._calls[prompt.model] += 1
            number, call = self._number, self._calls[prompt.model]
        record = {
            "model": prompt.model,
            "api": api,
            "stream": options.stream,
            "call": call,
            "prompt": prompt,
            "body": body,
        }
        try:
            behaviour = as_behaviour(self.models.get(prompt.model, self.default))
        except Exception as exc:  # a misconfigured model: say so on every call to it
            return self._fail(wire, record, 500, str(exc))
        fault = behaviour.fault_for(call)
        if fault is not None and fault.kind != "truncate":
            return await self._fault(wire, record, fault, behaviour, request)
        try:
            reply = await respond(behaviour, prompt)
        except BadRequest as exc:
            return self._fail(wire, record, 400, str(exc))
        except Exception as exc:
            message = f"the behaviour of model {prompt.model!r} raised {type(exc).__name__}: {exc}"
            return self._fail(wire, record, 500, message)
        completion = complete(reply, prompt, options, number=number)
        truncate = fault is not None
        self._record(**record, status=200, fault="truncate" if truncate else None)
        await self._pause(behaviour.latency, request)
        if options.stream:
            frames = wire.stream_frames(completion, options)
            return _Stream(
                frames,
                gap=behaviour.chunk_latency,
                pause=lambda s: self._pause(s, request),
                cut=max(1, len(frames) // 2) if truncate else None,
            )
        body_out = wire.completion_body(completion)
        return _CutBody(body_out) if truncate else JSONResponse(body_out)

    def _fail(
        self,
        wire: ModuleType,
        record: dict[str, Any],
        status: int,
        message: str,
    ) -> JSONResponse:
        """An error answer; a misbehaving behaviour (500) is marked not worth retrying."""
        self._record(**record, status=status, fault=None, error=message)
        kind = "invalid_request" if status == 400 else "server_error"
        headers = {"x-should-retry": "false"} if status == 500 else None
        return JSONResponse(wire.error_body(kind, message), status_code=status, headers=headers)

    async def _fault(
        self,
        wire: ModuleType,
        record: dict[str, Any],
        fault: Fault,
        behaviour: Behaviour,
        request: Request,
    ) -> JSONResponse:
        model, call = record["model"], record["call"]
        status = {"rate_limit": 429, "server_error": 500, "timeout": 504}[fault.kind]
        message = f"injected {fault.kind} for model {model!r} (call {call})"
        self._record(**record, status=status, fault=fault.kind, error=message)
        if fault.kind == "timeout":
            await self._pause(math.inf if fault.hang is None else fault.hang, request)
        else:
            await self._pause(behaviour.latency, request)
        kind = "rate_limit" if status == 429 else "server_error"
        headers = {"retry-after": f"{fault.retry_after:g}"} if status == 429 else None
        return JSONResponse(wire.error_body(kind, message), status_code=status, headers=headers)
