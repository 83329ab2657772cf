"""Token prices, so SMART can compare models by what they actually cost rather than by name.

Prices are list prices in USD per 1M tokens. Users override them (negotiated rates, new models)
with a :class:`PriceTable` built from their own entries on top of :data:`DEFAULT_PRICES`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import ConfigError
from .usage import Usage

__all__ = ["DEFAULT_PRICES", "Price", "PriceTable", "UnknownPriceError"]

_PER_TOKEN = 1e-6  # prices are quoted per 1M tokens


class UnknownPriceError(ConfigError):
    """No price is known for a model; the message says how to supply one."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"no price known for model {model!r}; give its price in USD per 1M tokens, e.g. "
            f"ModelSpec(name={model!r}, input_price=1.0, output_price=4.0) in Python, "
            f"prices={{{model!r}: Price(input=1.0, output=4.0)}} in SmartConfig, "
            f"or --price {model}=1.0,4.0 on the command line"
        )

    def __reduce__(self) -> tuple[type[UnknownPriceError], tuple[str]]:
        # The custom __init__ signature would otherwise break pickling (multiprocessing workers).
        return (type(self), (self.model,))


def _check_rate(field: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"Price.{field} must be a number of USD per 1M tokens, got {value!r}; e.g. 2.5"
        )
    if not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"Price.{field} must be a finite number >= 0 (USD per 1M tokens), got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class Price:
    """What one model charges, in USD per 1M tokens.

    ``cached_input`` (prompt-cache hits) and ``cache_write`` (tokens written to the cache) default
    to ``input``: providers that don't discount or surcharge them bill them as normal input.
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def __post_init__(self) -> None:
        for field in ("input", "output", "cached_input", "cache_write"):
            _check_rate(field, getattr(self, field))
        if self.cached_input is None:
            object.__setattr__(self, "cached_input", self.input)
        if self.cache_write is None:
            object.__setattr__(self, "cache_write", self.input)

    def cost(self, usage: Usage) -> float:
        """USD cost of ``usage``.

        ``usage.input_tokens`` is the whole prompt, so cache reads and cache writes are carved out
        of it and billed at their own rates; reasoning tokens are already part of output tokens.
        """
        cached = usage.cached_input_tokens
        written = usage.cache_write_tokens
        uncached = max(usage.input_tokens - cached - written, 0)
        total = (
            uncached * self.input
            + cached * self.cached_input  # type: ignore[operator]  # filled in __post_init__
            + written * self.cache_write  # type: ignore[operator]
            + usage.output_tokens * self.output
        )
        return total * _PER_TOKEN


def _openai(input: float, output: float, cached_input: float | None = None) -> Price:
    # OpenAI bills cache writes as normal input; only cache hits are discounted.
    return Price(input, output, cached_input)


def _anthropic(input: float, output: float, cache_hit: float | None = None) -> Price:
    # Anthropic: 5-minute cache writes cost 1.25x input; cache hits 0.1x input unless the
    # pricing page lists a lower rate for the model.
    hit = round(input * 0.1, 6) if cache_hit is None else cache_hit
    return Price(input, output, hit, round(input * 1.25, 6))


# List prices (USD per 1M tokens; standard tier, no batch discount). Anthropic's rows were checked
# against platform.claude.com/docs/en/about-claude/pricing and OpenAI's GPT-5.x rows against
# third-party copies of developers.openai.com/api/docs/pricing, in November 2026; older rows date
# from 2025. Cached-input prices are given where the provider publishes them. Dated snapshots
# whose price differs from their family's are listed explicitly, because alias resolution would
# otherwise price them like the current snapshot. Models billed by prompt-length tiers (Claude
# Haiku 5.5) are left out on purpose: one number would misprice long prompts, so users must say
# which band applies to them (the UnknownPriceError says how).
_DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI — GPT-5 family
    "gpt-5.4": _openai(2.50, 15.00, 0.25),
    "gpt-5.4-mini": _openai(0.75, 4.50, 0.075),
    "gpt-5.2": _openai(1.75, 14.00, 0.175),
    "gpt-5.1": _openai(1.25, 10.00, 0.125),
    "gpt-5": _openai(1.25, 10.00, 0.125),
    "gpt-5-mini": _openai(0.25, 2.00, 0.025),
    "gpt-5-nano": _openai(0.05, 0.40, 0.005),
    # OpenAI — GPT-4.1 family
    "gpt-4.1": _openai(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _openai(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _openai(0.10, 0.40, 0.025),
    # OpenAI — GPT-4o family
    "gpt-4o": _openai(2.50, 10.00, 1.25),
    "gpt-4o-2024-05-13": _openai(5.00, 15.00),
    "chatgpt-4o-latest": _openai(5.00, 15.00),
    "gpt-4o-mini": _openai(0.15, 0.60, 0.075),
    # OpenAI — reasoning models
    "o1": _openai(15.00, 60.00, 7.50),
    "o1-preview": _openai(15.00, 60.00, 7.50),
    "o1-mini": _openai(1.10, 4.40, 0.55),
    "o3": _openai(2.00, 8.00, 0.50),
    "o3-mini": _openai(1.10, 4.40, 0.55),
    "o4-mini": _openai(1.10, 4.40, 0.275),
    # OpenAI — legacy GPT-4 / GPT-3.5
    "gpt-4-turbo": _openai(10.00, 30.00),
    "gpt-4-turbo-preview": _openai(10.00, 30.00),
    "gpt-4-1106-preview": _openai(10.00, 30.00),
    "gpt-4-0125-preview": _openai(10.00, 30.00),
    "gpt-4": _openai(30.00, 60.00),
    "gpt-4-0613": _openai(30.00, 60.00),
    "gpt-4-32k": _openai(60.00, 120.00),
    "gpt-3.5-turbo": _openai(0.50, 1.50),
    "gpt-3.5-turbo-0125": _openai(0.50, 1.50),
    "gpt-3.5-turbo-1106": _openai(1.00, 2.00),
    "gpt-3.5-turbo-0613": _openai(1.50, 2.00),
    "gpt-3.5-turbo-instruct": _openai(1.50, 2.00),
    # Anthropic — Claude 5.x
    "claude-fable-5-1": _anthropic(10.00, 50.00, cache_hit=0.25),
    "claude-fable-5": _anthropic(10.00, 50.00),
    "claude-opus-5-5": _anthropic(4.00, 20.00, cache_hit=0.20),
    "claude-opus-5": _anthropic(5.00, 25.00),
    "claude-sonnet-5-5": _anthropic(2.00, 10.00, cache_hit=0.10),
    "claude-sonnet-5": _anthropic(2.00, 10.00),
    # Anthropic — Claude 4.x (Opus dropped from $15/$75 to $5/$25 with 4.5)
    "claude-opus-4-8": _anthropic(5.00, 25.00),
    "claude-opus-4-7": _anthropic(5.00, 25.00),
    "claude-opus-4-6": _anthropic(5.00, 25.00),
    "claude-opus-4-5": _anthropic(5.00, 25.00),
    "claude-opus-4-1": _anthropic(15.00, 75.00),
    "claude-opus-4": _anthropic(15.00, 75.00),
    "claude-sonnet-4-6": _anthropic(3.00, 15.00),
    "claude-sonnet-4-5": _anthropic(3.00, 15.00),
    "claude-sonnet-4": _anthropic(3.00, 15.00),
    "claude-haiku-4-5": _anthropic(1.00, 5.00),
    # Anthropic — Claude 3.x
    "claude-3-7-sonnet": _anthropic(3.00, 15.00),
    "claude-3-5-sonnet": _anthropic(3.00, 15.00),
    "claude-3-5-haiku": _anthropic(0.80, 4.00),
    "claude-3-opus": _anthropic(15.00, 75.00),
    "claude-3-haiku": Price(0.25, 1.25, cached_input=0.03, cache_write=0.30),
}

# Provider aliases that are not a date or "-latest" away from a table entry.
_ALIASES: dict[str, str] = {
    "claude-opus-4-0": "claude-opus-4",
    "claude-sonnet-4-0": "claude-sonnet-4",
}
for _alias, _target in _ALIASES.items():
    _DEFAULT_PRICES[_alias] = _DEFAULT_PRICES[_target]

DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(_DEFAULT_PRICES)
"""Built-in list prices (USD per 1M tokens), keyed by canonical model name."""

# "openai:", "anthropic/", "openrouter/openai/" ... but not Bedrock's "anthropic.claude-...:0".
_PROVIDER_PREFIX = re.compile(r"^[a-z][a-z0-9_-]*[:/]")
# "-2024-08-06", "-20241022", Vertex's "@20241022", and "-latest".
_VERSION_SUFFIX = re.compile(r"(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{8})|-latest)$")


def _alias_forms(model: str) -> list[str]:
    """Names ``model`` may be listed under, most specific first (lower-cased, then shortened)."""
    name = model.strip().lower()
    forms = [name]
    while (stripped := _PROVIDER_PREFIX.sub("", name, count=1)) != name:
        name = stripped
        forms.append(name)
    while (stripped := _VERSION_SUFFIX.sub("", name, count=1)) != name:
        name = stripped
        forms.append(name)
    return forms


class _Layer:
    """One set of prices plus its alias index; exact keys beat keys that merely normalise alike."""

    __slots__ = ("exact", "index")

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self.exact: dict[str, Price] = dict(prices)
        self.index: dict[str, Price] = {key.strip().lower(): p for key, p in prices.items()}
        for key, price in prices.items():
            for form in _alias_forms(key)[1:]:
                self.index.setdefault(form, price)

    def lookup(self, model: str) -> Price | None:
        if model in self.exact:
            return self.exact[model]
        for form in _alias_forms(model):
            if form in self.index:
                return self.index[form]
        return None


def _checked(prices: Mapping[str, Price] | None) -> dict[str, Price]:
    if prices is None:
        return {}
    if not isinstance(prices, Mapping):
        raise ConfigError(
            f"price overrides must be a mapping of model name to Price, got "
            f"{type(prices).__name__}; e.g. {{'gpt-4o': Price(input=2.5, output=10.0)}}"
        )
    out: dict[str, Price] = {}
    for model, price in prices.items():
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(
                f"price override keys must be non-empty model names, got {model!r}; "
                "e.g. {'gpt-4o': Price(input=2.5, output=10.0)}"
            )
        if not isinstance(price, Price):
            raise ConfigError(
                f"price override for {model!r} must be a Price, got {price!r}; "
                f"e.g. {{{model!r}: Price(input=2.5, output=10.0)}}"
            )
        out[model] = price
    return out


class PriceTable(Mapping[str, Price]):
    """Immutable price lookup: user overrides first, then the built-in list prices.

    Lookups accept provider-qualified and dated names (``openai:gpt-4o-2024-08-06``,
    ``claude-3-5-haiku-latest``), so ``table["gpt-4o-2024-08-06"]`` and ``in`` work on aliases
    even though iteration yields only the names actually listed. An override applies to every
    alias of its name, including dated snapshots the built-in table lists separately.
    """

    __slots__ = ("_base", "_overrides")

    def __init__(
        self,
        overrides: Mapping[str, Price] | None = None,
        *,
        base: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> None:
        self._overrides = _Layer(_checked(overrides))
        self._base = _Layer(_checked(base))

    # -- building ---------------------------------------------------------------------------

    def override(self, prices: Mapping[str, Price]) -> PriceTable:
        """A new table where ``prices`` win over this table's overrides and built-in prices."""
        merged = {**self._overrides.exact, **_checked(prices)}
        return PriceTable(merged, base=self._base.exact)

    def with_prices(
        self, prices: Mapping[str, Price] | None = None, /, **more: Price
    ) -> PriceTable:
        """Like :meth:`override`; keywords suit names that are identifiers (``o3=Price(...)``)."""
        return self.override({**_checked(prices), **more})

    # -- lookup -----------------------------------------------------------------------------

    def lookup(self, model: str) -> Price | None:
        """The price of ``model`` (exact name first, then aliases), or None when unknown."""
        if not isinstance(model, str):
            return None
        return self._overrides.lookup(model) or self._base.lookup(model)

    def price(self, model: str) -> Price:
        """The price of ``model``; raises :class:`UnknownPriceError` saying how to supply one."""
        found = self.lookup(model)
        if found is None:
            raise UnknownPriceError(model)
        return found

    def cost(self, model: str, usage: Usage) -> float:
        """USD cost of ``usage`` on ``model``."""
        return self.price(model).cost(usage)

    # -- Mapping protocol -------------------------------------------------------------------

    def __getitem__(self, model: str) -> Price:
        found = self.lookup(model)
        if found is None:
            raise KeyError(model)
        return found

    def __iter__(self) -> Iterator[str]:
        yield from self._overrides.exact
        yield from (k for k in self._base.exact if k not in self._overrides.exact)

    def __len__(self) -> int:
        return len(self._overrides.exact.keys() | self._base.exact.keys())

    def __repr__(self) -> str:
        return f"PriceTable(overrides={self._overrides.exact!r}, {len(self)} models)"
