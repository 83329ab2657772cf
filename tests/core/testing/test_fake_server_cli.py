"""``smart fake-server``: what it builds and prints, and the real command until Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from smart_core.testing import Behaviour
from smart_core.testing._cli import build_server, describe


def replay_file(tmp_path: Path) -> Path:
    path = tmp_path / "log.jsonl"
    item = {"id": 1, "input": "hi", "outputs": {"ref": {"text": "hello"}, "cand": {"text": "hey"}}}
    path.write_text(json.dumps(item) + "\n")
    return path


def test_build_server_serves_the_file_models_with_latency(tmp_path):
    server = build_server(replay_file=replay_file(tmp_path), latency=0.25)
    assert sorted(server.models) == ["cand", "ref"]
    assert all(isinstance(b, Behaviour) and b.latency == 0.25 for b in server.models.values())
    assert isinstance(server.default, Behaviour) and server.default.latency == 0.25


def test_describe_prints_base_urls_and_sdk_environment(tmp_path):
    path = replay_file(tmp_path)
    with build_server(replay_file=path) as server:
        text, url = describe(server, path), server.url
    assert f"OpenAI    base_url={url}/v1 " in text and f"Anthropic base_url={url} " in text
    assert f"OPENAI_BASE_URL={url}/v1 " in text and f"ANTHROPIC_BASE_URL={url} " in text
    assert "cand, ref; any other name: echo" in text


# A shell without job control (a script, CI, a test runner started with `&`) starts background
# jobs with SIGINT ignored, and Python starts with it still ignored: the command must stop anyway.
IGNORE_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "


@pytest.mark.parametrize(
    ("prelude", "stop_signal"),
    [
        pytest.param("", signal.SIGINT, id="ctrl-c"),
        pytest.param(IGNORE_SIGINT, signal.SIGINT, id="sigint-ignored-by-the-shell"),
        pytest.param("", signal.SIGTERM, id="sigterm"),
    ],
)
def test_command_serves_until_interrupted(tmp_path, prelude, stop_signal):
    path = replay_file(tmp_path)
    code = prelude + "from smart_core.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "fake-server", "--replay", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("fake LLM server on http://127.0.0.1:"), proc.stderr.read()
        url = first.split()[-1]
        r = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "ref", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.json()["choices"][0]["message"]["content"] == "hello"
        proc.send_signal(stop_signal)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "stopping" in out
