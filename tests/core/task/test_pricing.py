from __future__ import annotations

import pickle

import pytest

from smart_core.errors import ConfigError
from smart_core.task.pricing import DEFAULT_PRICES, Price, PriceTable, UnknownPriceError
from smart_core.task.usage import Usage

REQUIRED_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4-turbo",
    "gpt-4",
    "gpt-4-1106-preview",
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-1106",
    "gpt-3.5-turbo-instruct",
    "o1",
    "o1-mini",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "claude-3-5-haiku",
    "claude-3-5-sonnet",
    "claude-3-7-sonnet",
    "claude-3-haiku",
    "claude-3-opus",
    "claude-sonnet-4",
    "claude-opus-4",
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "claude-opus-4-1",
]


# -- Price ----------------------------------------------------------------------------------------


def test_price_defaults_cache_rates_to_input() -> None:
    price = Price(input=2.0, output=8.0)
    assert price.cached_input == 2.0
    assert price.cache_write == 2.0


def test_price_cost_splits_input_into_uncached_cached_and_written() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    usage = Usage(
        input_tokens=1_000_000, output_tokens=100_000, cached_input_tokens=600_000,
        cache_write_tokens=100_000, reasoning_tokens=50_000,
    )  # fmt: skip
    # 300k uncached * 3 + 600k cached * 0.3 + 100k written * 3.75 + 100k out * 15 (reasoning
    # tokens are already inside output_tokens, so they are not billed twice).
    expected = 0.9 + 0.18 + 0.375 + 1.5
    assert price.cost(usage) == pytest.approx(expected)


def test_cached_tokens_are_priced_lower_than_uncached() -> None:
    price = DEFAULT_PRICES["gpt-4o"]
    cold = price.cost(Usage(input_tokens=10_000, output_tokens=100))
    warm = price.cost(Usage(input_tokens=10_000, output_tokens=100, cached_input_tokens=8_000))
    assert warm < cold
    assert cold - warm == pytest.approx(8_000 * (2.50 - 1.25) / 1e6)


def test_cost_never_bills_negative_uncached_input() -> None:
    # Inconsistent usage (cached > input) must not produce a discount below the cached price.
    price = Price(input=1.0, output=0.0, cached_input=0.5)
    assert price.cost(Usage(input_tokens=10, cached_input_tokens=20)) == pytest.approx(20 * 0.5e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input": -1.0, "output": 1.0},
        {"input": 1.0, "output": float("nan")},
        {"input": 1.0, "output": 1.0, "cached_input": -0.1},
        {"input": "1", "output": 1.0},
        {"input": True, "output": 1.0},
    ],
)
def test_price_rejects_bad_rates(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="Price\\."):
        Price(**kwargs)  # type: ignore[arg-type]


def test_price_is_frozen_and_picklable() -> None:
    price = Price(1.0, 2.0)
    with pytest.raises(AttributeError):
        price.input = 5.0  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(price)) == price


# -- DEFAULT_PRICES -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", REQUIRED_MODELS)
def test_default_table_covers_required_models(model: str) -> None:
    price = DEFAULT_PRICES[model]
    assert 0 < price.input <= price.output
    assert price.cached_input is not None and price.cached_input <= price.input


def test_default_table_spot_checks() -> None:
    assert DEFAULT_PRICES["gpt-4o"] == Price(2.50, 10.00, 1.25)
    assert DEFAULT_PRICES["gpt-4o-mini"].input == 0.15
    assert DEFAULT_PRICES["gpt-5"].output == 10.00
    haiku = DEFAULT_PRICES["claude-3-5-haiku"]
    assert (haiku.input, haiku.output) == (0.80, 4.00)
    # Anthropic charges extra for cache writes and 10% of input for cache hits.
    assert haiku.cache_write == pytest.approx(1.00)
    assert haiku.cached_input == pytest.approx(0.08)


def test_2026_models_carry_their_own_rates_not_their_family_s() -> None:
    """Opus 4.5+ is a third of Opus 4/4.1's price; Opus 5.5 and Sonnet 5.5 have cheaper cache
    hits than the 0.1x rule; a dated Opus 4.5 snapshot resolves to 4.5, not to Opus 4."""
    table = PriceTable()
    assert (
        table.price("claude-opus-4-5-20251101").input,
        table.price("claude-opus-4-1").input,
    ) == (
        5.00,
        15.00,
    )
    opus55 = DEFAULT_PRICES["claude-opus-5-5"]
    assert (opus55.input, opus55.output, opus55.cached_input, opus55.cache_write) == (
        4.00,
        20.00,
        0.20,
        5.00,
    )
    assert DEFAULT_PRICES["claude-sonnet-5-5"].cached_input == 0.10
    assert DEFAULT_PRICES["claude-sonnet-5"].cached_input == pytest.approx(0.20)
    assert DEFAULT_PRICES["gpt-5.4"] == Price(2.50, 15.00, 0.25)
    # Tiered by prompt length: deliberately unknown so the user states the band.
    assert table.lookup("claude-haiku-5-5") is None


def test_default_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        DEFAULT_PRICES["gpt-4o"] = Price(0, 0)  # type: ignore[index]


# -- PriceTable lookup ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai:gpt-4o", "gpt-4o"),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
        ("openai:gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openrouter/openai/o4-mini", "o4-mini"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("anthropic:claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("GPT-4o", "gpt-4o"),
        ("  gpt-4o  ", "gpt-4o"),
    ],
)
def test_aliases_resolve(alias: str, canonical: str) -> None:
    table = PriceTable()
    assert table.lookup(alias) == DEFAULT_PRICES[canonical]
    assert table[alias] == DEFAULT_PRICES[canonical]
    assert alias in table


def test_exact_snapshot_beats_alias_of_family() -> None:
    # The May 2024 gpt-4o snapshot is dearer than gpt-4o; stripping its date would misprice it.
    table = PriceTable()
    assert table.price("gpt-4o-2024-05-13").input == 5.00
    assert table.price("gpt-4o-2024-08-06").input == 2.50
    # Exact names beat normalisation: gpt-3.5-turbo-1106 is not priced like gpt-3.5-turbo.
    assert table.price("gpt-3.5-turbo-1106") != table.price("gpt-3.5-turbo")


@pytest.mark.parametrize(
    "name",
    ["gpt-4o-unknown", "ft:gpt-4o-mini-2024-07-18:acme::abc123", "anthropic.claude-3-5-haiku-v1:0"],
)
def test_unresolvable_names_are_unknown(name: str) -> None:
    table = PriceTable()
    assert table.lookup(name) is None
    assert name not in table


def test_override_precedence_over_defaults_and_their_aliases() -> None:
    mine = Price(1.0, 2.0)
    table = PriceTable({"gpt-4o": mine})
    assert table.price("gpt-4o") is mine
    assert table.price("openai:gpt-4o-2024-08-06") is mine
    # An override applies to snapshots the built-in table lists separately, too.
    assert table.price("gpt-4o-2024-05-13") is mine
    # Other models are untouched.
    assert table.price("gpt-4o-mini") == DEFAULT_PRICES["gpt-4o-mini"]


def test_override_key_with_provider_prefix_matches_bare_name() -> None:
    mine = Price(0.1, 0.2)
    table = PriceTable({"anthropic:claude-3-haiku": mine})
    assert table.price("claude-3-haiku-20240307") is mine


def test_override_and_with_prices_return_new_tables() -> None:
    base = PriceTable()
    a = Price(1.0, 1.0)
    b = Price(2.0, 2.0)
    first = base.override({"my-model": a})
    second = first.with_prices({"my-model": b}, o3=a)
    assert base.lookup("my-model") is None
    assert first.price("my-model") is a
    assert second.price("my-model") is b  # later overrides win
    assert second.price("o3") is a
    assert first.price("o3") == DEFAULT_PRICES["o3"]


def test_custom_base_replaces_builtin_prices() -> None:
    table = PriceTable(base={"only": Price(1.0, 1.0)})
    assert table.lookup("gpt-4o") is None
    assert list(table) == ["only"]


def test_mapping_protocol() -> None:
    table = PriceTable({"my-model": Price(1.0, 1.0), "gpt-4o": Price(9.0, 9.0)})
    names = list(table)
    assert names[:2] == ["my-model", "gpt-4o"]
    assert len(names) == len(set(names)) == len(table) == len(DEFAULT_PRICES) + 1
    with pytest.raises(KeyError):
        table["nope"]
    assert table.get("nope") is None


def test_cost_via_table() -> None:
    table = PriceTable()
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert table.cost("claude-3-5-haiku-latest", usage) == pytest.approx(0.80 + 4.00)


@pytest.mark.parametrize(
    "overrides",
    [{"x": (1.0, 2.0)}, {"": Price(1, 1)}, ["gpt-4o"]],
)
def test_bad_overrides_are_config_errors(overrides: object) -> None:
    with pytest.raises(ConfigError, match="Price"):
        PriceTable(overrides)  # type: ignore[arg-type]


# -- unknown models -------------------------------------------------------------------------------


def test_unknown_model_error_names_model_and_fix() -> None:
    with pytest.raises(UnknownPriceError) as info:
        PriceTable().price("acme-llm-7b")
    message = str(info.value)
    assert "acme-llm-7b" in message
    assert "ModelSpec(name='acme-llm-7b', input_price=" in message
    assert "--price acme-llm-7b=" in message
    assert info.value.model == "acme-llm-7b"
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, ValueError)


def test_unknown_price_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(UnknownPriceError("m")))
    assert isinstance(err, UnknownPriceError)
    assert err.model == "m"
    assert "'m'" in str(err)
