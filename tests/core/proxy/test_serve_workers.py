"""``smart serve --workers 4`` on a shared Redis store: four uvicorn processes, one set of
counters, exact under concurrent clients; any worker's /metrics reports the shared totals."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import openai
import pytest

from smart_core.stores import open_store
from smart_core.testing import FakeLLMServer
from smart_core.testing.servers import RedisServer, ServerUnavailable, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis_url():
    try:
        server = RedisServer().start()
    except (ServerUnavailable, OSError) as exc:
        pytest.skip(f"no Redis server: {exc}")
    yield server.url
    server.close()


def test_four_workers_share_one_redis_store(redis_url):
    with FakeLLMServer() as upstream:
        port = free_port()
        cmd = [
            sys.executable, "-c", "from smart_core.cli import main; main()", "serve",
            "--reference", "openai:gpt-4o", "--candidates", "openai:gpt-4o-mini",
            "--epsilon", "0.1", "--task", "triage", "--store", redis_url,
            "--openai-base-url", upstream.openai_base_url,
            "--port", str(port), "--workers", "4",
        ]  # fmt: skip
        env = {**os.environ, "OPENAI_API_KEY": "upstream-key"}
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "smart serve did not start"
                time.sleep(0.2)

            async def main():
                client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="client-key")
                messages = [{"role": "user", "content": "Say 'ok'"}]
                plain = [
                    client.chat.completions.create(model="triage", messages=messages)
                    for _ in range(150)
                ]
                out = await asyncio.gather(*plain)
                stream = await client.chat.completions.create(
                    model="triage", messages=messages, stream=True
                )
                chunks = [c async for c in stream]
                return out, chunks

            out, chunks = asyncio.run(main())
            assert len({r.model_extra["smart"]["request_id"] for r in out}) == 150
            assert "smart" in chunks[-1].model_extra
            store = open_store(redis_url)
            try:
                counters = store.read("triage")
            finally:
                store.close()
            assert counters["requests"] == 151
            metrics = httpx.get(f"{base}/metrics").text
            assert 'smart_requests_total{task="triage"} 151.0' in metrics
        finally:
            proc.terminate()
            proc.wait(timeout=20)
