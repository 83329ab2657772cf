"""``smart bench serve``: what ``smart serve`` adds to a request, against calling the model.

One run starts the local fake model server, measures ``concurrency`` clients calling it directly
(the baseline), then the same load through ``smart serve`` with each worker count on each store,
and reports throughput and p50/p99 latency with the ratios to the baseline. The proxy runs as a
real ``smart serve`` process (uvicorn workers and all), the clients are one asyncio process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ServeBenchRow", "bench_serve"]

_BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say 'ok'"}]}


@dataclass(frozen=True)
class ServeBenchRow:
    """One measured configuration; the ratios are to the direct baseline of the same run."""

    target: str
    store: str
    workers: int
    requests: int
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    throughput_ratio: float = 1.0
    added_p50_ms: float = 0.0
    added_p99_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _load(url: str, requests: int, concurrency: int, model: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:

        async def worker() -> None:
            while queue:
                queue.pop()
                start = time.perf_counter()
                for attempt in (1, 2):
                    try:
                        resp = await client.post(url, json={**_BODY, "model": model})
                        break
                    except (httpx.ReadError, httpx.RemoteProtocolError):
                        # a keep-alive connection the server closed as it was reused: the
                        # request never reached the server, so it is sent again (and timed)
                        if attempt == 2:
                            raise
                resp.raise_for_status()
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies


def _row(target: str, store: str, workers: int, seconds: float, lat: list[float]) -> ServeBenchRow:
    lat = sorted(lat)
    return ServeBenchRow(
        target=target,
        store=store,
        workers=workers,
        requests=len(lat),
        seconds=seconds,
        throughput=len(lat) / seconds,
        p50_ms=1000 * statistics.median(lat),
        p99_ms=1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SMART = [sys.executable, "-c", "from smart_core.cli import main; main()"]


def _log_file() -> Any:
    """Where a child's stderr goes: a file, never an unread pipe (a full pipe blocks the child)."""
    return tempfile.NamedTemporaryFile(prefix="smart-bench-", suffix=".log", delete=False)


def _tail(proc: subprocess.Popen[bytes]) -> str:
    path = getattr(proc, "log_path", None)
    return Path(path).read_text(errors="replace")[-2000:] if path else ""


def _wait(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {_tail(proc)}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not start within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _start_fake(latency: float) -> tuple[subprocess.Popen[bytes], str]:
    """The fake model server in a process of its own: serving from the clients' process would
    measure the two fighting over one interpreter."""
    port = _free_port()
    cmd = [*_SMART, "fake-server", "--port", str(port), "--latency", str(latency)]
    log = _log_file()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    proc.log_path = log.name  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{port}/v1"

    def ready() -> bool:
        return httpx.post(f"{base}/chat/completions", json=_BODY, timeout=1).status_code == 200

    _wait(proc, ready, "smart fake-server")
    return proc, base


def _start_proxy(upstream: str, store: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    flags = {
        "--reference": "openai:gpt-4o",
        "--candidates": "openai:gpt-4o-mini",
        "--epsilon": "0.1",
        "--task": "bench",
        "--store": store,
        "--openai-base-url": upstream,
        "--port": str(port),
        "--workers": str(workers),
    }
    cmd = [*_SMART, "serve", *(x for kv in flags.items() for x in kv)]
    env = {**os.environ, "OPENAI_API_KEY": "bench"}
    log = _log_file()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    proc.log_path = log.name  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{port}"
    _wait(proc, lambda: httpx.get(f"{base}/healthz", timeout=1).status_code == 200, "smart serve")
    return proc, base


def bench_serve(
    *,
    stores: dict[str, str] | None = None,
    workers: tuple[int, ...] = (1, 4),
    requests: int = 2000,
    concurrency: int = 64,
    latency: float = 0.0,
) -> list[ServeBenchRow]:
    """Measure the direct baseline, then the proxy per store (name -> URL; default a fresh
    SQLite file) and worker count. ``latency`` seconds is the fake model's own response time."""
    rows: list[ServeBenchRow] = []
    fake, upstream = _start_fake(latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            direct = f"{upstream}/chat/completions"
            asyncio.run(_load(direct, min(requests, 200), concurrency, "gpt-4o"))  # warm up
            seconds, lat = asyncio.run(_load(direct, requests, concurrency, "gpt-4o"))
            base = _row("direct", "-", 0, seconds, lat)
            rows.append(base)
            for name, url in (stores or {"sqlite": "sqlite:///"}).items():
                for n in workers:
                    if url.startswith("sqlite:///"):  # a fresh file per configuration
                        url = f"sqlite:///{Path(tmp) / f'bench-{name}-{n}.db'}"
                    row = _through_proxy(upstream, name, url, n, requests, concurrency)
                    rows.append(_relative(row, base))
    finally:
        _stop(fake)
    return rows


def _through_proxy(
    upstream: str, name: str, url: str, workers: int, requests: int, concurrency: int
) -> ServeBenchRow:
    proc, proxy = _start_proxy(upstream, url, workers)
    try:
        target = f"{proxy}/v1/chat/completions"
        asyncio.run(_load(target, min(requests, 200), concurrency, "bench"))
        seconds, lat = asyncio.run(_load(target, requests, concurrency, "bench"))
    except httpx.HTTPError as exc:
        raise RuntimeError(
            f"smart serve ({name}, {workers} workers) failed: {exc!r}; its log:\n{_tail(proc)}"
        ) from exc
    finally:
        _stop(proc)
    return _row("smart serve", name, workers, seconds, lat)


def _relative(row: ServeBenchRow, base: ServeBenchRow) -> ServeBenchRow:
    return ServeBenchRow(
        **{
            **row.to_dict(),
            "throughput_ratio": row.throughput / base.throughput,
            "added_p50_ms": row.p50_ms - base.p50_ms,
            "added_p99_ms": row.p99_ms - base.p99_ms,
        }
    )
