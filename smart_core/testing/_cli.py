"""``smart fake-server``: the fake OpenAI/Anthropic server from the shell, for trying a client,
an app or a framework against scripted models without keys or network."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ..errors import SmartError
from ._behaviour import Behaviour
from ._echo import echo
from ._replay import replay
from ._server import FakeLLMServer

__all__ = ["build_server", "describe", "fake_server"]

# The signals that stop the server: Ctrl-C, and what `kill` and process supervisors send.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def build_server(
    *, port: int = 0, replay_file: Path | None = None, latency: float = 0.0
) -> FakeLLMServer:
    """The server the command runs: every model of the replay file answers from it, any other
    name with :func:`echo`; all with ``latency`` seconds before the first byte."""
    models: dict[str, Behaviour] = {}
    if replay_file is not None:
        answer = replay(replay_file)  # answers as whichever model the client names
        models = {m: Behaviour(answer, latency=latency) for m in answer.models}
    return FakeLLMServer(models, default=Behaviour(echo, latency=latency), port=port)


def describe(server: FakeLLMServer, replay_file: Path | None = None) -> str:
    """What the command prints once serving: the base URLs, as SDK environment variables too."""
    served = f"from {replay_file}: {', '.join(sorted(server.models))}; " if server.models else ""
    return "\n".join(
        [
            f"fake LLM server on {server.url}",
            f"  OpenAI    base_url={server.openai_base_url}  (POST /v1/chat/completions)",
            f"  Anthropic base_url={server.anthropic_base_url}  (POST /v1/messages)",
            f"  models: {served}any other name: echo",
            f"export OPENAI_BASE_URL={server.openai_base_url} OPENAI_API_KEY=sk-fake",
            f"export ANTHROPIC_BASE_URL={server.anthropic_base_url} ANTHROPIC_API_KEY=sk-ant-fake",
            "Ctrl-C to stop.",
        ]
    )


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def _stopping_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt while serving, whatever was inherited.

    A shell without job control starts a background job (``smart fake-server &`` in a script,
    a test runner started with ``&``) with SIGINT ignored, and Python keeps an ignored SIGINT,
    so without this ``kill -INT`` would never stop the server. SIGTERM would end the process
    without stopping the server thread or saying so. A blocked signal (the mask is inherited
    too, from whatever thread started the process) would stay pending for ever: the main
    thread unblocks both. The previous handlers and mask come back after.
    """
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in _STOP_SIGNALS}
    mask = _unblock(_STOP_SIGNALS)
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(sig, handler)


def _unblock(signals: tuple[signal.Signals, ...]) -> set[signal.Signals] | None:
    """Unblock ``signals`` in this thread; the mask before, or None where there are no masks."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        return None
    return signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


def fake_server(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 0,
    replay_file: Annotated[
        Path | None,
        typer.Option("--replay", help="Answer from this smart-replay JSONL file."),
    ] = None,
    latency: Annotated[
        float, typer.Option(help="Seconds before the first byte of every response.")
    ] = 0.0,
) -> None:
    """Serve OpenAI- and Anthropic-compatible endpoints with scripted models until Ctrl-C."""
    if latency < 0:
        raise typer.BadParameter("must be >= 0", param_hint="--latency")
    try:
        server = build_server(port=port, replay_file=replay_file, latency=latency)
    except (OSError, SmartError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    try:
        server.start()
    except OSError as exc:
        typer.echo(f"error: cannot listen on 127.0.0.1:{port}: {exc.strerror}", err=True)
        raise typer.Exit(code=2) from None
    try:
        with _stopping_on_signals():
            typer.echo(describe(server, replay_file))
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        server.stop()
