from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from smart_core.errors import ConfigError
from smart_core.task.answer import Answer
from smart_core.task.comparators import CallableMatch, ChoiceMatch, ExactMatch, NumberMatch
from smart_core.task.config import ModelSpec, SmartConfig
from smart_core.task.pricing import DEFAULT_PRICES, Price, PriceTable, UnknownPriceError


def make(**overrides: Any) -> SmartConfig:
    settings: dict[str, Any] = {
        "epsilon": 0.05,
        "reference": "gpt-4o",
        "candidates": ["gpt-4o-mini", "gpt-4.1-nano"],
    }
    settings.update(overrides)
    return SmartConfig(**settings)


def error_of(**overrides: Any) -> str:
    with pytest.raises(ConfigError) as info:
        make(**overrides)
    assert not isinstance(info.value, ValidationError)
    return str(info.value)


# -- ModelSpec ------------------------------------------------------------------------------------


def test_model_spec_from_string_keeps_full_name() -> None:
    assert ModelSpec.model_validate("gpt-4o") == ModelSpec(name="gpt-4o")
    assert ModelSpec.model_validate("openai:gpt-4o").name == "openai:gpt-4o"


def test_model_spec_is_frozen_and_hashable() -> None:
    spec = ModelSpec(name="gpt-4o")
    with pytest.raises(ConfigError, match="read-only"):
        spec.name = "other"  # type: ignore[misc]
    assert len({spec, ModelSpec(name="gpt-4o")}) == 1


def test_model_spec_rejects_empty_name() -> None:
    with pytest.raises(ConfigError, match="name"):
        ModelSpec(name="  ")


@pytest.mark.parametrize(
    ("kwargs", "missing"),
    [({"input_price": 1.0}, "output_price"), ({"output_price": 1.0}, "input_price")],
)
def test_model_spec_needs_both_prices(kwargs: dict[str, float], missing: str) -> None:
    with pytest.raises(ConfigError, match=f"no {missing}; give both prices"):
        ModelSpec(name="m", **kwargs)


def test_model_spec_rejects_negative_price() -> None:
    with pytest.raises(ConfigError, match=r"input_price.*>= 0"):
        ModelSpec(name="m", input_price=-1, output_price=1)


def test_resolve_price_explicit_wins_over_table() -> None:
    table = PriceTable()
    explicit = ModelSpec(name="gpt-4o", input_price=1.0, output_price=2.0, cached_input_price=0.1)
    assert explicit.resolve_price(table) == Price(1.0, 2.0, cached_input=0.1)
    assert ModelSpec(name="openai:gpt-4o").resolve_price(table) == DEFAULT_PRICES["gpt-4o"]


def test_resolve_price_cached_override_on_table_price() -> None:
    price = ModelSpec(name="gpt-4o", cached_input_price=0.5).resolve_price(PriceTable())
    assert (price.input, price.output, price.cached_input) == (2.5, 10.0, 0.5)


def test_resolve_price_unknown_model() -> None:
    with pytest.raises(UnknownPriceError, match="acme-1"):
        ModelSpec(name="acme-1").resolve_price(PriceTable())


# -- SmartConfig: valid configs -------------------------------------------------------------------


def test_defaults() -> None:
    config = make()
    assert config.task == "default"
    assert config.delta == 0.05
    assert config.store == "memory://"
    assert config.audit_rate is None
    assert config.method == "anytime"
    assert config.delta_weights is None
    assert config.expected_requests is None and config.batch_size is None
    assert config.comparator == ExactMatch()
    assert config.reference == ModelSpec(name="gpt-4o")
    assert config.model_names() == ["gpt-4o", "gpt-4o-mini", "gpt-4.1-nano"]


def test_comparator_spec_is_parsed() -> None:
    config = make(comparator="choice:A,B,C,D")
    assert isinstance(config.comparator, ChoiceMatch)
    assert config.comparator(Answer("B\n"), Answer("The answer is B"))
    assert isinstance(make(comparator=lambda c, r: True).comparator, CallableMatch)
    number = NumberMatch(0.5)
    assert make(comparator=number).comparator is number


def test_prices_overrides_make_unknown_models_usable() -> None:
    config = make(
        candidates=["my-local-llm", "gpt-4o-mini"],
        prices={"my-local-llm": Price(0.1, 0.2), "gpt-4o-mini": (9.0, 9.0)},
    )
    assert config.price("my-local-llm") == Price(0.1, 0.2)
    assert config.price("gpt-4o-mini") == Price(9.0, 9.0)  # overrides the built-in price
    assert config.price_table.price("gpt-4o-mini-2024-07-18") == Price(9.0, 9.0)


@pytest.mark.parametrize(
    "price", [Price(1.0, 2.0), (1.0, 2.0), [1, 2], "1,2", {"input": 1.0, "output": 2.0}]
)
def test_price_override_forms(price: Any) -> None:
    assert make(candidates=["x"], prices={"x": price}).price("x") == Price(1.0, 2.0)


def test_explicit_model_price_beats_prices_table() -> None:
    config = make(
        candidates=[{"name": "x", "input_price": 3.0, "output_price": 4.0}],
        prices={"x": (1.0, 2.0)},
    )
    assert config.price("x") == Price(3.0, 4.0)


def test_single_candidate_string_is_a_list() -> None:
    assert make(candidates="gpt-4o-mini").model_names() == ["gpt-4o", "gpt-4o-mini"]


def test_spec_lookup() -> None:
    config = make()
    assert config.spec("gpt-4o-mini") == ModelSpec(name="gpt-4o-mini")
    with pytest.raises(ConfigError, match=r"'nope'.*gpt-4o-mini"):
        config.spec("nope")


@pytest.mark.parametrize("store", ["memory://", "sqlite:///smart.db", "sqlite:////var/x.db"])
def test_valid_store_urls(store: str) -> None:
    assert make(store=store).store == store


@pytest.mark.parametrize(
    "store", ["redis://h:6379/0", "rediss://h/0", "postgresql://u@h/db", "postgres://u@h/db"]
)
def test_network_store_urls_are_accepted(store: str) -> None:
    assert make(store=store).store == store


def test_a_bad_store_url_lists_every_scheme_and_hides_the_password() -> None:
    message = error_of(store="mysql://u:hunter2@db")
    assert "'memory://'" in message and "'sqlite:///smart.db'" in message
    assert "redis://" in message and "postgresql://" in message
    assert "hunter2" not in message


def test_the_config_repr_never_shows_the_store_url() -> None:
    config = make(store="redis://:hunter2@h:6379/0")
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)


@pytest.mark.parametrize("task", ["default", "support-triage", "team/a:v1.2", "x_y"])
def test_valid_task_names(task: str) -> None:
    assert make(task=task).task == task


def test_volumes_and_rates_accepted() -> None:
    config = make(
        expected_requests=10_000, batch_size=500, audit_rate=0.0, delta_weights={"gpt-4o-mini": 2.0}
    )
    assert (config.expected_requests, config.batch_size) == (10_000, 500)
    assert (config.audit_rate, config.delta_weights) == (0.0, {"gpt-4o-mini": 2.0})


def test_config_is_read_only_but_replace_revalidates() -> None:
    config = make()
    with pytest.raises(ConfigError, match="replace"):
        config.epsilon = 0.1  # type: ignore[misc]
    changed = config.replace(epsilon=0.1)
    assert changed.epsilon == 0.1 and config.epsilon == 0.05
    assert changed.candidates == config.candidates
    with pytest.raises(ConfigError, match="epsilon"):
        config.replace(epsilon=2)


def test_json_round_trip() -> None:
    config = make(comparator="choice:A,B", prices={"x": (1, 2)}, candidates=["x"])
    data = json.loads(config.model_dump_json())
    assert data["comparator"] == "choice:A,B"
    assert SmartConfig.model_validate(data) == config


def test_field_docs_are_exposed() -> None:
    for name, field in SmartConfig.model_fields.items():
        assert field.description, f"{name} lacks a docstring"
    assert "(0, 1)" in (SmartConfig.model_fields["epsilon"].description or "")


# -- SmartConfig: errors --------------------------------------------------------------------------


def test_epsilon_out_of_range() -> None:
    message = error_of(epsilon=1.5)
    assert "epsilon" in message and "(0, 1)" in message and "1.5" in message


@pytest.mark.parametrize("epsilon", [0, 1, -0.1, float("nan")])
def test_epsilon_bounds_are_open(epsilon: float) -> None:
    assert "epsilon" in error_of(epsilon=epsilon)


@pytest.mark.parametrize("delta", [0, 1, 2.0])
def test_delta_out_of_range(delta: float) -> None:
    message = error_of(delta=delta)
    assert "delta" in message and "(0, 1)" in message


def test_missing_epsilon_explains_it() -> None:
    with pytest.raises(ConfigError, match=r"epsilon: missing required setting.*share of answers"):
        SmartConfig(reference="gpt-4o", candidates=["gpt-4o-mini"])  # type: ignore[call-arg]


def test_duplicate_candidate_names() -> None:
    message = error_of(candidates=["gpt-4o-mini", "gpt-4o-mini"])
    assert "candidates[1] 'gpt-4o-mini' repeats candidates[0]" in message
    assert "remove it from the candidates" in message


def test_candidate_same_as_reference() -> None:
    message = error_of(candidates=["gpt-4o-mini", "gpt-4o"])
    assert "candidates[1] 'gpt-4o' is the reference model" in message
    assert "remove it from the candidates" in message


def test_no_candidates() -> None:
    assert "at least one" in error_of(candidates=[])


def test_unknown_model_without_price() -> None:
    message = error_of(candidates=["acme-llm"])
    assert "acme-llm" in message
    assert "input_price=" in message and "--price acme-llm=" in message


def test_several_unknown_models_listed_together() -> None:
    message = error_of(reference="acme-big", candidates=["acme-small"])
    assert "'acme-big'" in message and "'acme-small'" in message and "--price" in message


@pytest.mark.parametrize("field", ["expected_requests", "batch_size"])
@pytest.mark.parametrize("value", [-5, 0])
def test_volumes_must_be_positive(field: str, value: int) -> None:
    message = error_of(**{field: value})
    assert field in message and "> 0" in message


@pytest.mark.parametrize(
    "store", ["mysql://db", "smart.db", "sqlite://", "sqlite://rel.db", "memory://x"]
)
def test_bad_store_urls(store: str) -> None:
    message = error_of(store=store)
    assert "store" in message and repr(store) in message
    assert "sqlite:///" in message or "'memory://'" in message


@pytest.mark.parametrize("task", ["", "has space", "semi;colon", "ünï"])
def test_bad_task_names(task: str) -> None:
    message = error_of(task=task)
    assert "task" in message and "letters, digits" in message


@pytest.mark.parametrize("rate", [-0.1, 1.0])
def test_audit_rate_range(rate: float) -> None:
    assert "audit_rate must be in [0, 1)" in error_of(audit_rate=rate)


@pytest.mark.parametrize("weight", [0.0, -1.0])
def test_delta_weights_positive(weight: float) -> None:
    assert "delta_weights['gpt-4o-mini'] must be a finite number > 0" in error_of(
        delta_weights={"gpt-4o-mini": weight}
    )


def test_bad_comparator() -> None:
    message = error_of(comparator="fuzzy")
    assert "comparator" in message and "'fuzzy'" in message and "choice:A,B,C,D" in message


def test_bad_method() -> None:
    message = error_of(method="hoeffding")
    assert "method" in message and "clopper-pearson" in message


def test_unknown_setting_lists_valid_ones() -> None:
    message = error_of(epsilon_=0.1)
    assert "epsilon_: unknown setting" in message and "delta_weights" in message


def test_bad_price_override() -> None:
    message = error_of(prices={"x": "cheap"})
    assert "'x'" in message and "USD per 1M tokens" in message


def test_nested_model_errors_carry_their_path() -> None:
    message = error_of(
        candidates=["gpt-4o-mini", {"name": "z", "input_price": -1, "output_price": 1}]
    )
    assert "candidates[1].input_price" in message and ">= 0" in message


def test_multiple_problems_reported_together() -> None:
    message = error_of(epsilon=2, delta=0, store="ftp://x")
    assert "3 problems" in message
    assert "epsilon" in message and "delta" in message and "store" in message


def test_model_validate_and_json_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="epsilon"):
        SmartConfig.model_validate({"epsilon": 5, "reference": "gpt-4o", "candidates": ["o3"]})
    with pytest.raises(ConfigError, match="epsilon"):
        SmartConfig.model_validate_json(
            '{"epsilon": 0, "reference": "gpt-4o", "candidates": ["o3"]}'
        )
