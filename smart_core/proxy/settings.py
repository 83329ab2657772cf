"""What ``smart serve`` runs: its tasks, store and upstream addresses, as one JSON-able value.

Several uvicorn workers each build their own app from the same settings (passed in the
``SMART_SERVE_SETTINGS`` environment variable), so they share nothing but the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.applications import Starlette

from ..engine.router import SmartRouter
from ..errors import ConfigError
from ..providers.sdk import PROVIDERS, make_provider, parse_model_spec
from ..task.config import SmartConfig
from .app import create_app
from .embeddings import upstream_embedder

__all__ = ["SETTINGS_ENV", "ServeSettings", "TaskSettings", "app_from_env", "check_providers"]

SETTINGS_ENV = "SMART_SERVE_SETTINGS"


@dataclass(frozen=True)
class TaskSettings:
    """One task: its models (``provider:model`` specs), target and comparator, and its answer
    cache (the :class:`SmartConfig` fields of the same names; docs/cache.md)."""

    name: str
    reference: str
    candidates: list[str]
    epsilon: float
    delta: float = 0.05
    comparator: str = "tool_calls"
    expected_requests: int | None = None
    cache: str = "off"
    cache_answers: str = "shared"
    cache_similarities: list[float] | None = None
    cache_ttl_seconds: float | None = 7 * 24 * 3600.0
    cache_max_entries: int = 100_000
    #: With ``cache="semantic"``: an upstream embedding model (``openai:MODEL``) instead of the
    #: offline hashed n-gram embedder.
    embedding: str | None = None
    #: Cascades as routes (the :class:`SmartConfig` field): ``"auto"``, or a list of cascades in
    #: their TOML form, ``[{steps = [{model = "openai:gpt-4o-mini", scorer = "label:yes"}]}]``
    #: (models named as in ``candidates``). Each is certified like a model.
    cascades: Any = None

    def cache_fields(self) -> dict[str, Any]:
        """The cache's config fields (the similarities only when given: the config has a
        default grid)."""
        fields: dict[str, Any] = {
            "cache": self.cache,
            "cache_answers": self.cache_answers,
            "cache_ttl_seconds": self.cache_ttl_seconds,
            "cache_max_entries": self.cache_max_entries,
        }
        if self.cache_similarities is not None:
            fields["cache_similarities"] = tuple(self.cache_similarities)
        return fields


@dataclass(frozen=True)
class ServeSettings:
    """Tasks, the shared store, upstream base URLs, prices and call options."""

    tasks: list[TaskSettings]
    store: str = "sqlite:///smart.db"
    default_task: str | None = None
    base_urls: dict[str, str] = field(default_factory=dict)
    prices: dict[str, Any] = field(default_factory=dict)
    timeout: float = 60.0
    max_retries: int = 4

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        raw = json.loads(text)
        raw["tasks"] = [TaskSettings(**t) for t in raw["tasks"]]
        return cls(**raw)

    def configs(self) -> dict[str, SmartConfig]:
        """One validated config per task (errors name the task and the field)."""
        out = {}
        for t in self.tasks:
            try:
                out[t.name] = SmartConfig(
                    task=t.name,
                    epsilon=t.epsilon,
                    delta=t.delta,
                    reference=t.reference,
                    candidates=t.candidates,
                    comparator=t.comparator,
                    expected_requests=t.expected_requests,
                    cascades=t.cascades,
                    store=self.store,
                    prices=self.prices,
                    **t.cache_fields(),
                )
            except ConfigError as exc:
                raise ConfigError(f"task {t.name!r}: {exc}") from None
            if t.embedding is not None and t.cache != "semantic":
                raise ConfigError(
                    f"task {t.name!r}: embedding {t.embedding!r} is used only by the semantic "
                    'cache; set cache = "semantic" or leave embedding out'
                )
        return out

    def build(self) -> Starlette:
        """The proxy app: a router per task and a provider per model."""
        configs = self.configs()
        providers = {}
        for config in configs.values():
            for name in config.model_names():
                if name in providers:
                    continue
                spec = parse_model_spec(name)
                providers[name] = make_provider(
                    spec,
                    base_url=self._base_url(spec.provider),
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                )
        routers, embedders = {}, []
        for t in self.tasks:
            embedder = None
            if t.embedding is not None:
                embedder = upstream_embedder(
                    t.embedding,
                    base_url=self._base_url("openai"),
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                )
                embedders.append(embedder)
            routers[t.name] = SmartRouter(configs[t.name], embedder=embedder)
        return create_app(routers, providers, default_task=self.default_task, embedders=embedders)

    def _base_url(self, provider: str) -> str | None:
        return self.base_urls.get(provider) or os.environ.get(f"{provider.upper()}_BASE_URL")


def app_from_env() -> Starlette:
    """The app of one uvicorn worker, from the settings its parent put in the environment."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise ConfigError(
            f"{SETTINGS_ENV} is not set; start the proxy with `smart serve`, which sets it"
        )
    return ServeSettings.from_json(text).build()


def check_providers(settings: ServeSettings) -> None:
    """Every model spec names a known provider (before any worker starts)."""
    for t in settings.tasks:
        for spec in (t.reference, *t.candidates, *([t.embedding] if t.embedding else [])):
            provider = parse_model_spec(spec).provider
            if provider not in PROVIDERS:
                raise ConfigError(f"task {t.name!r}: unknown provider in {spec!r}")
