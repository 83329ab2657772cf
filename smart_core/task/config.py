"""Validated settings for one SMART task, so mistakes fail at start-up with a message that says
which setting is wrong and how to fix it, instead of deep inside a run.

Both models raise :class:`ConfigError` (never pydantic's ``ValidationError``) from the
constructor, ``model_validate`` and ``model_validate_json``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from ..errors import ConfigError
from .answer import Answer
from .cascades import Cascade, cascade_specs, parse_cascades
from .comparators import Comparator, parse_comparator
from .pricing import Price, PriceTable, UnknownPriceError

__all__ = ["SEMANTIC_HIT_ROUTE", "ModelSpec", "SmartConfig", "semantic_route_name"]

#: What a semantic lookup's hit is called before a route serves it (docs/cache.md).
SEMANTIC_HIT_ROUTE = "cache:semantic"


def _indexed(specs: Any) -> list[tuple[str, Any]]:
    return [(f"candidates[{i}]", spec) for i, spec in enumerate(specs)]


def semantic_route_name(similarity: float) -> str:
    """The route serving the nearest earlier answer at ``similarity`` or more, e.g.
    ``cache:semantic@0.9`` (a route's name keys its counters: it never changes)."""
    return f"{SEMANTIC_HIT_ROUTE}@{similarity:g}"


# -- turning pydantic errors into ConfigError -----------------------------------------------------


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(model: type[BaseModel], error: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(where, message)`` pairs for one pydantic error; messages say what is wrong and the fix."""
    where = _loc(tuple(error["loc"]))
    original = (error.get("ctx") or {}).get("error")
    nested = getattr(original, "smart_problems", None)
    if nested:  # a nested settings model already explained itself; keep its field paths
        joined = [
            (f"{where}.{sub}" if where and sub else (where or sub), msg) for sub, msg in nested
        ]
        return [(w.replace(".[", "["), msg) for w, msg in joined]
    if isinstance(original, ConfigError):
        message = str(original)  # our own validators already name the field and the fix
    elif error["type"] == "missing":
        loc = error["loc"]
        field = model.model_fields.get(str(loc[0])) if len(loc) == 1 else None
        hint = f" ({' '.join(field.description.split())})" if field and field.description else ""
        message = f"missing required setting{hint}"
    elif error["type"] == "extra_forbidden":
        valid = ", ".join(model.model_fields)
        message = f"unknown setting; valid settings are: {valid}"
    elif error["type"] == "frozen_instance":
        message = (
            f"{model.__name__} is read-only; build a changed copy instead, "
            f"e.g. config.replace({error['loc'][0]}=...)"
        )
    else:
        message = f"{error['msg']} (got {error.get('input')!r})"
    return [(where, message)]


def _config_error(model: type[BaseModel], exc: ValidationError) -> ConfigError:
    problems = [pair for err in exc.errors() for pair in _describe(model, err)]
    lines = [f"{where}: {message}" if where else message for where, message in problems]
    if len(lines) == 1:
        error = ConfigError(f"invalid {model.__name__}: {lines[0]}")
    else:
        body = "\n".join(f"  - {line}" for line in lines)
        error = ConfigError(f"invalid {model.__name__} ({len(lines)} problems):\n{body}")
    # Lets an enclosing model re-report these under its own field path (nested validation).
    error.smart_problems = problems  # type: ignore[attr-defined]
    return error


class _Settings(BaseModel):
    """Base that converts validation failures into :class:`ConfigError` on every entry point."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _config_error(type(self), exc) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise _config_error(type(self), exc) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise _config_error(cls, exc) from None

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            raise _config_error(cls, exc) from None

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied (the instance itself is read-only)."""
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**current, **changes})


def _rate(field: str, value: float | None) -> float | None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise ConfigError(
            f"{field} must be a finite price >= 0 in USD per 1M tokens, got {value!r}; e.g. 2.5"
        )
    return value


# -- ModelSpec ------------------------------------------------------------------------------------


class ModelSpec(_Settings):
    """A model SMART may call, optionally with its own price (USD per 1M tokens).

    A plain string is accepted wherever a ModelSpec is expected (``"gpt-4o"``); the name is kept
    verbatim (``"openai:gpt-4o"`` stays so) because adapters route on it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    name: str
    """Model name as the provider adapter understands it, e.g. ``gpt-4o`` or ``openai:gpt-4o``."""
    input_price: float | None = None
    """Price of uncached input in USD per 1M tokens; give it together with ``output_price``."""
    output_price: float | None = None
    """Price of output in USD per 1M tokens; give it together with ``input_price``."""
    cached_input_price: float | None = None
    """Price of cache-hit input in USD per 1M tokens; defaults to the table's or ``input_price``."""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value.strip():
            raise ConfigError("name must be a non-empty model name, e.g. 'gpt-4o-mini'")
        return value.strip()

    @field_validator("input_price", "output_price", "cached_input_price")
    @classmethod
    def _check_price(cls, value: float | None, info: Any) -> float | None:
        return _rate(info.field_name, value)

    @model_validator(mode="after")
    def _both_or_neither(self) -> ModelSpec:
        if (self.input_price is None) != (self.output_price is None):
            given, missing = (
                ("input_price", "output_price")
                if self.output_price is None
                else ("output_price", "input_price")
            )
            raise ConfigError(
                f"model {self.name!r} has {given} but no {missing}; give both prices "
                f"(USD per 1M tokens) or neither to use the built-in price table"
            )
        return self

    def resolve_price(self, table: PriceTable) -> Price:
        """This model's price: explicit prices win, else ``table``; else UnknownPriceError."""
        if self.input_price is not None and self.output_price is not None:
            return Price(self.input_price, self.output_price, self.cached_input_price)
        price = table.price(self.name)
        if self.cached_input_price is not None:
            price = dataclasses.replace(price, cached_input=self.cached_input_price)
        return price


# -- SmartConfig ----------------------------------------------------------------------------------

_TASK = re.compile(r"^[A-Za-z0-9\-_.:/]+$")
_STORE_EXAMPLES = (
    "'memory://' (one process), 'sqlite:///smart.db' (processes on one machine), "
    "'redis://host:6379/0' or 'postgresql://user:password@host/db' (a fleet)"
)
_STORE_SCHEMES = frozenset({"memory", "sqlite", "redis", "rediss", "postgresql", "postgres"})


def _open_interval(field: str, value: float, example: str) -> float:
    if not 0 < value < 1:
        raise ConfigError(f"{field} must be in (0, 1), i.e. strictly between 0 and 1; {example}")
    return value


def _parse_price(model: str, value: Any) -> Any:
    """Accept ``Price``, a mapping, ``(in, out[, cached])`` or the CLI's ``"IN,OUT[,CACHED]"``."""
    if isinstance(value, str):
        try:
            value = [float(part) for part in value.split(",")]
        except ValueError:
            value = None
    if isinstance(value, list | tuple) and 2 <= len(value) <= 3:
        return Price(*value)
    if isinstance(value, Mapping):
        try:
            return Price(**value)
        except TypeError:
            pass
    if isinstance(value, Price):
        return value
    raise ConfigError(
        f"price for {model!r} must be Price(input=..., output=...), a pair of numbers or "
        f"'IN,OUT' in USD per 1M tokens, got {value!r}; e.g. prices={{{model!r}: (2.5, 10.0)}}"
    )


class SmartConfig(_Settings):
    """Everything SMART needs to know about one task: the guarantee, the models, where state lives.

    Immutable once built (derive variants with ``model_copy(update=...)`` only for fields that
    need no validation, or build a new config).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        arbitrary_types_allowed=True,
        use_attribute_docstrings=True,
        validate_default=True,
    )

    task: str = "default"
    """Name of the task whose statistics are kept apart from other tasks' (default ``default``);
    letters, digits and ``-_.:/`` only."""
    epsilon: float
    """Allowed share of answers that differ from the reference model's answers, in (0, 1); e.g.
    0.05 allows at most 5% differing answers. Required."""
    delta: float = 0.05
    """Allowed probability that the epsilon guarantee fails, in (0, 1); default 0.05, i.e. the
    guarantee holds with 95% confidence."""
    reference: ModelSpec
    """The model whose answers define "correct"; a name or a ModelSpec. Required."""
    candidates: list[ModelSpec]
    """Cheaper models SMART may route to instead of the reference; at least one. Required."""
    store: str = Field("memory://", repr=False)  # a URL may carry a password
    """URL of the state store: ``memory://`` (default, one process), ``sqlite:///path.db``
    (processes on one machine), ``redis://host:6379/0`` / ``rediss://`` or
    ``postgresql://user:password@host/db`` (a fleet; docs/deploy.md, "Stores")."""
    expected_requests: int | None = None
    """Expected number of online requests, used to decide whether profiling pays for itself; None
    (default) means unknown. Must be > 0."""
    batch_size: int | None = None
    """Known number of items in a batch job; setting it enables batch mode. None (default) means
    online mode. Must be > 0."""
    audit_rate: float | None = None
    """Share of routed requests also sent to the reference to keep checking agreement, in [0, 1).
    Default None: 0.01 online, 0 in batch mode (a batch's guarantee needs no audits)."""
    cooldown_after: int = 3
    """A routed candidate that fails this many times in a row (each failure falls back to the
    reference) is skipped for ``cooldown_seconds``: its requests go straight to the reference.
    Failures are never counted as disagreements. 0 turns the cooldown off."""
    cooldown_seconds: float = 30.0
    """How long a failing candidate is skipped (per process) before it is tried again."""
    drift_detection: bool = True
    """Online mode: watch each candidate's probes and audits for a drop in agreement below the
    bound the mix relies on, and restart (re-profile) a candidate whose agreement has dropped,
    with a fresh share of delta (docs/guarantee.md, "Under shift"). The first epoch keeps 95 % of
    each candidate's delta for this. Ignored in batch mode."""
    comparator: Any = "exact"
    """How answers are compared: a spec string (``exact``, ``choice:A,B,C,D``, ``regex:PATTERN``,
    ``number[:TOL]``, ``json``, ``tool_calls``), a Comparator or a function; default ``exact``."""
    method: Literal["anytime", "clopper-pearson"] = "anytime"
    """Confidence bound: ``anytime`` (default) stays valid however often results are checked;
    ``clopper-pearson`` is the paper's fixed-sample rule and is not valid under repeated looks."""
    prices: dict[str, Price] = {}
    """Price overrides in USD per 1M tokens, merged over the built-in table, e.g.
    ``{"my-model": Price(input=1.0, output=2.0)}`` or ``{"my-model": (1.0, 2.0)}``."""
    delta_weights: dict[str, float] | None = None
    """How delta is split over the candidates (union bound), as positive weights by name; fixed
    before any data is seen. Default None: an equal split."""
    screen: int | None = None
    """Batch mode: requests of the batch's start that screen every candidate before the few
    worth it are certified on fresh probes with all of delta (docs/guarantee.md, "Screening").
    Screening stops earlier once one candidate is told apart. Default None: at most 8 % of the
    batch (24 to 240) with six candidates or more and 400 items or more, else none (with few
    candidates the plain plan saves more); 0 turns screening off. Must be >= 0 and below
    ``batch_size``."""

    cascades: Any = None
    """Cascades (FrugalGPT) SMART may route to besides the candidates, each measured on probes
    like a candidate: ``"auto"`` (per candidate and comparator label, "keep this label, else the
    reference"; per pair of candidates, "keep the first's answer when both agree, else the
    reference"), ``"auto+learned"`` (those, and per candidate a cascade whose learned scorer is
    fit on the first probes and frozen; docs/cascades.md), or a list of
    :class:`~smart_core.task.cascades.Cascade` (or their TOML form,
    ``{steps = [{model = ..., scorer = "label:A"}]}``; a step's ``threshold`` may be a list,
    one cascade per value). Default None: no cascades."""
    threshold_families: Literal["union", "fixed-sequence"] = "union"
    """Online: how cascades differing only in one step's threshold (a grid) are certified.
    ``union`` (default): each is a route with its own share of delta. ``fixed-sequence``: a
    grid of more than four takes one share, its members certified at the levels 1-eps, 1-2 eps,
    1-4 eps, 1-8 eps by fixed-sequence testing (docs/guarantee.md). The anytime bound widens
    little when its share shrinks, and the levels are coarse, so ``union`` saved as much or
    more in every comparison measured (docs/cascades.md)."""
    cache: Literal["off", "exact", "semantic"] = "off"
    """Answer cache (docs/cache.md): ``exact`` serves a request the reference has already
    answered, identically (same messages with the system message, tools, response format and
    parameters), from the store without calling any model; ``semantic`` does that too, and adds
    one route per ``cache_similarities`` value, ``cache:semantic@s`` ("the nearest earlier
    answer if its similarity is at least s, else the reference"), measured on probes like a
    candidate; ``off`` (default) never looks."""
    cache_similarities: tuple[float, ...] = (0.8, 0.85, 0.9, 0.95)
    """With ``cache="semantic"``: the similarity thresholds of the semantic routes (each in
    (0, 1]); every route gets a share of delta, so a few are better than many."""
    cache_answers: Literal["shared", "per_user"] = "shared"
    """Who may be served a cached answer: ``shared`` (default), any user of the tenant whose
    request it answered; ``per_user``, only the user who asked (for answers that depend on who
    asks). A request of a per-user task that names no user neither reads nor writes the cache."""
    cache_ttl_seconds: float | None = 7 * 24 * 3600.0
    """How long a cached answer is served, in seconds (default 7 days); None: until evicted."""
    cache_max_entries: int = 100_000
    """Cached answers kept per task; beyond that the soonest to expire are dropped."""
    tenant: str = "default"
    """Tenant of the requests that name none (cached answers never cross tenants)."""

    _price_table: PriceTable = PrivateAttr()
    _cascades: list[Cascade] = PrivateAttr(default_factory=list)

    # -- field validators -----------------------------------------------------------------------

    @field_validator("task")
    @classmethod
    def _check_task(cls, value: str) -> str:
        if not _TASK.match(value):
            raise ConfigError(
                f"task must be non-empty and use only letters, digits and '-_.:/', got {value!r}; "
                "e.g. task='support-triage'"
            )
        return value

    @field_validator("epsilon")
    @classmethod
    def _check_epsilon(cls, value: float) -> float:
        return _open_interval(
            "epsilon", value, f"got {value!r}; e.g. epsilon=0.05 for at most 5% differing answers"
        )

    @field_validator("delta")
    @classmethod
    def _check_delta(cls, value: float) -> float:
        return _open_interval("delta", value, f"got {value!r}; e.g. delta=0.05 for 95% confidence")

    @field_validator("candidates")
    @classmethod
    def _check_candidates(cls, value: list[ModelSpec]) -> list[ModelSpec]:
        if not value:
            raise ConfigError(
                "candidates must list at least one model cheaper than the reference; "
                "e.g. candidates=['gpt-4o-mini']"
            )
        return value

    @field_validator("candidates", mode="before")
    @classmethod
    def _one_candidate(cls, value: Any) -> Any:
        # A lone name or ModelSpec is a one-element list, not a list of characters.
        return [value] if isinstance(value, str | ModelSpec) else value

    @field_validator("store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        from .redaction import redact_url  # passwords never reach an error message

        shown = redact_url(value)
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in _STORE_SCHEMES:
            raise ConfigError(
                f"store must be a URL with scheme memory://, sqlite:///, redis://, rediss://, "
                f"postgresql:// or postgres://, got {shown!r}; use {_STORE_EXAMPLES}"
            )
        if scheme.lower() == "sqlite" and (not rest.startswith("/") or len(rest) < 2):
            raise ConfigError(
                f"store {value!r} has no SQLite file path; use three slashes and a path, e.g. "
                "'sqlite:///state/smart.db' (relative) or 'sqlite:////var/lib/smart.db' (absolute)"
            )
        if scheme.lower() == "memory" and rest:
            raise ConfigError(f"store {value!r}: memory store URLs take no path; use 'memory://'")
        return value

    @field_validator("expected_requests", "batch_size")
    @classmethod
    def _check_volume(cls, value: int | None, info: Any) -> int | None:
        if value is not None and value <= 0:
            raise ConfigError(
                f"{info.field_name} must be a whole number > 0, got {value!r}; "
                f"leave it unset (None) if unknown"
            )
        return value

    @field_validator("screen")
    @classmethod
    def _check_screen(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ConfigError(
                f"screen must be a whole number >= 0, got {value!r}; 0 turns screening off, "
                "None (default) screens batches of six candidates or more"
            )
        return value

    @field_validator("cooldown_after", "cooldown_seconds")
    @classmethod
    def _check_cooldown(cls, value: float, info: ValidationInfo) -> float:
        if value < 0:
            raise ConfigError(
                f"{info.field_name} must be >= 0, got {value!r}; e.g. cooldown_after=3 and "
                "cooldown_seconds=30, or cooldown_after=0 to turn the cooldown off"
            )
        return value

    @field_validator("cache_ttl_seconds", "cache_max_entries")
    @classmethod
    def _check_cache_limit(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(
                f"{info.field_name} must be a number > 0, got {value!r}; e.g. "
                "cache_ttl_seconds=86400 (a day; None: no expiry) and cache_max_entries=100000"
            )
        return value

    @field_validator("cache_similarities")
    @classmethod
    def _check_similarities(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(not (math.isfinite(s) and 0 < s <= 1) for s in value):
            raise ConfigError(
                f"cache_similarities must be thresholds in (0, 1], at least one, got {value!r}; "
                "e.g. cache_similarities=(0.85, 0.9, 0.95)"
            )
        return tuple(sorted(set(value)))

    @field_validator("audit_rate")
    @classmethod
    def _check_audit_rate(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value < 1:
            raise ConfigError(
                f"audit_rate must be in [0, 1), got {value!r}; e.g. audit_rate=0.01 to re-check "
                "1% of routed requests, or 0 to turn auditing off"
            )
        return value

    @field_validator("delta_weights")
    @classmethod
    def _check_delta_weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for name, weight in (value or {}).items():
            if not weight > 0 or weight == float("inf"):
                raise ConfigError(
                    f"delta_weights[{name!r}] must be a finite number > 0, got {weight!r}; "
                    "e.g. delta_weights={'gpt-4o-mini': 2, 'claude-3-5-haiku': 1}"
                )
        return value

    @field_validator("comparator")
    @classmethod
    def _check_comparator(cls, value: Any) -> Comparator:
        return parse_comparator(value)

    @field_serializer("cascades", when_used="json")
    def _dump_cascades(self, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        return cascade_specs(self._cascades)

    @field_serializer("comparator", when_used="json")
    def _dump_comparator(self, value: Comparator) -> str:
        # JSON gets the spec string (round-trips for built-ins); Python dumps keep the object.
        return value.name

    @field_validator("prices", mode="before")
    @classmethod
    def _coerce_prices(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"prices must map model names to prices, got {value!r}; "
                "e.g. prices={'my-model': (1.0, 2.0)} (USD per 1M tokens)"
            )
        return {model: _parse_price(str(model), price) for model, price in value.items()}

    # -- cross-field checks ---------------------------------------------------------------------

    @model_validator(mode="after")
    def _check_models(self) -> SmartConfig:
        seen = {self.reference.name: "reference"}
        for field, spec in [("reference", self.reference), *_indexed(self.candidates)]:
            if spec.name.startswith("cache:"):  # the answer cache's routes are named so
                raise ConfigError(
                    f"{field} {spec.name!r}: model names starting with 'cache:' are kept for the "
                    "answer cache's routes; name the model otherwise (ModelSpec(name=...))"
                )
        for i, spec in enumerate(self.candidates):
            if seen.get(spec.name) == "reference":
                raise ConfigError(
                    f"candidates[{i}] {spec.name!r} is the reference model; remove it from the "
                    "candidates (the reference answers whatever is not routed to a candidate)"
                )
            if spec.name in seen:
                raise ConfigError(
                    f"candidates[{i}] {spec.name!r} repeats {seen[spec.name]}; remove it from "
                    "the candidates (two deployments of one model need distinct `name`s)"
                )
            seen[spec.name] = f"candidates[{i}]"
        names = [c.name for c in self.candidates]
        cascades = parse_cascades(  # checked here so a bad cascade fails at start-up
            self.cascades,
            reference=self.reference.name,
            candidates=names,
            comparator=self.comparator,
        )
        routes = [*names, *(c.name for c in cascades), *self.semantic_routes()]
        for name in self.delta_weights or {}:
            if name not in routes:
                raise ConfigError(
                    f"delta_weights names {name!r}, which is not a candidate; use one of {routes}"
                )
        table = PriceTable(self.prices)  # rebuilt in model_post_init; private attrs aren't set yet
        unpriced: list[str] = []
        for spec in (self.reference, *self.candidates):
            try:
                spec.resolve_price(table)
            except UnknownPriceError:
                unpriced.append(spec.name)
        if len(unpriced) == 1:
            raise UnknownPriceError(unpriced[0])
        if unpriced:
            raise ConfigError(
                f"no price known for models {unpriced!r}; give each a price in USD per 1M tokens, "
                "e.g. ModelSpec(name=..., input_price=1.0, output_price=4.0), "
                "prices={name: (1.0, 4.0)}, or --price MODEL=1.0,4.0 on the command line"
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._price_table = PriceTable(self.prices)
        self._cascades = parse_cascades(
            self.cascades,
            reference=self.reference.name,
            candidates=[c.name for c in self.candidates],
            comparator=self.comparator,
        )

    # -- accessors ------------------------------------------------------------------------------

    @property
    def price_table(self) -> PriceTable:
        """Built-in list prices with this config's ``prices`` overrides applied."""
        return self._price_table

    def model_names(self) -> list[str]:
        """All model names, reference first, then candidates in the order given."""
        return [self.reference.name, *(spec.name for spec in self.candidates)]

    def cascade_list(self) -> list[Cascade]:
        """The cascades this config routes to besides its candidates (``"auto"`` expanded)."""
        return list(self._cascades)

    def untrained_cascades(self) -> list[Cascade]:
        """The cascades whose learned scorer is not fit yet: plans, not routes, until a training
        stage freezes them (docs/cascades.md, "Learned scorer")."""
        return [c for c in self._cascades if c.untrained]

    def route_names(self) -> list[str]:
        """Every route's name: the reference, the candidates, the cascades, then the semantic
        cache's routes."""
        return [*self.model_names(), *(c.name for c in self._cascades), *self.semantic_routes()]

    def semantic_routes(self) -> list[str]:
        """The semantic cache's routes (``cache:semantic@s``, lowest ``s`` first); none unless
        ``cache="semantic"``."""
        if self.cache != "semantic":
            return []
        return [semantic_route_name(s) for s in self.cache_similarities]

    def spec(self, name: str) -> ModelSpec:
        """The ModelSpec called ``name``; ConfigError listing the known names otherwise."""
        for spec in (self.reference, *self.candidates):
            if spec.name == name:
                return spec
        raise ConfigError(
            f"no model named {name!r} in this config; known models: {self.model_names()!r}"
        )

    def price(self, name: str) -> Price:
        """The resolved price of the model called ``name`` (explicit price, else the table)."""
        return self.spec(name).resolve_price(self._price_table)

    def cost_of(self, answer: Answer) -> float:
        """USD for one answer: its own ``cost`` if set, else its usage at its model's price."""
        if answer.cost is not None:
            return float(answer.cost)
        return self.price(answer.model).cost(answer.usage)
