"""`smart serve`'s answer-cache options: the --cache / --cache-answers flags and a --config's
cache keys reach each task's SmartConfig; misplaced or misspelled ones are refused by name.
uvicorn is replaced, so nothing listens: what is checked is the settings the server would run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smart_core.cli import app
from smart_core.proxy.settings import ServeSettings

WIDE = {"COLUMNS": "400", "NO_COLOR": "1"}
MODELS = ["--reference", "openai:gpt-4o", "--candidates", "openai:gpt-4o-mini"]


@pytest.fixture
def served(monkeypatch) -> list[ServeSettings]:
    """The settings each `smart serve` built its app from (uvicorn.run does nothing)."""
    import uvicorn

    built: list[ServeSettings] = []
    original = ServeSettings.build

    def build(self: ServeSettings) -> Any:
        built.append(self)
        return original(self)

    monkeypatch.setattr(ServeSettings, "build", build)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)
    return built


def serve(tmp_path: Path, *args: str) -> Any:
    store = f"sqlite:///{tmp_path / 'smart.db'}"
    upstream = ["--openai-base-url", "http://127.0.0.1:9/v1"]  # never called: nothing serves
    return CliRunner().invoke(app, ["serve", "--store", store, *upstream, *args], env=WIDE)


def test_the_cache_flags_set_the_flags_task(served, tmp_path):
    result = serve(tmp_path, *MODELS, "--epsilon", "0.05", "--cache", "semantic",
                   "--cache-answers", "per_user")  # fmt: skip
    assert result.exit_code == 0, result.output
    config = served[0].configs()["default"]
    assert (config.cache, config.cache_answers) == ("semantic", "per_user")
    assert config.cache_similarities == (0.8, 0.85, 0.9, 0.95)  # the config's default grid


def test_a_config_file_sets_each_tasks_cache(served, tmp_path):
    toml = tmp_path / "serve.toml"
    toml.write_text(
        """
[tasks.support]
reference = "openai:gpt-4o"
candidates = ["openai:gpt-4o-mini"]
epsilon = 0.05
cache = "semantic"
cache_answers = "per_user"
cache_similarities = [0.9, 0.95]
cache_ttl_seconds = 3600
cache_max_entries = 500
embedding = "openai:text-embedding-3-small"

[tasks.triage]
reference = "openai:gpt-4o"
candidates = ["openai:gpt-4o-mini"]
epsilon = 0.1
"""
    )
    result = serve(tmp_path, "--config", str(toml))
    assert result.exit_code == 0, result.output
    configs = served[0].configs()
    support = configs["support"]
    assert support.cache == "semantic" and support.cache_answers == "per_user"
    assert support.cache_similarities == (0.9, 0.95)
    assert (support.cache_ttl_seconds, support.cache_max_entries) == (3600, 500)
    assert served[0].tasks[0].embedding == "openai:text-embedding-3-small"
    assert configs["triage"].cache == "off"


def test_misplaced_or_invalid_cache_settings_are_refused_by_name(served, tmp_path):
    alone = serve(tmp_path, "--cache", "exact")
    assert (
        alone.exit_code != 0
        and "--cache, --cache-answers and --embedding set the flags' task" in (alone.output)
    )
    bad = serve(tmp_path, *MODELS, "--epsilon", "0.05", "--cache", "fuzzy")
    assert bad.exit_code != 0 and "task 'default'" in bad.output and "cache" in bad.output
    toml = tmp_path / "serve.toml"
    toml.write_text(
        '[tasks.t]\nreference = "openai:gpt-4o"\ncandidates = ["openai:gpt-4o-mini"]\n'
        'epsilon = 0.1\ncache_mode = "exact"\n'
    )
    typo = serve(tmp_path, "--config", str(toml))
    assert typo.exit_code != 0 and "unknown keys ['cache_mode']" in typo.output
    assert not served
