"""Cascades in the config: 'auto', explicit declarations (Python and their TOML form), stable
route names, and errors that name the cascade and the fix."""

from __future__ import annotations

import pytest

from smart_core import SmartConfig
from smart_core.errors import ConfigError
from smart_core.task.cascades import Cascade, CascadeStep, threshold_families


def _config(**kw) -> SmartConfig:
    kw.setdefault("comparator", "choice:yes,no")
    return SmartConfig(
        epsilon=0.1, reference="gpt-4o", candidates=["gpt-4o-mini", "gpt-4.1-nano"], **kw
    )


def test_auto_builds_label_and_consistency_cascades_with_readable_names():
    names = [c.name for c in _config(cascades="auto").cascade_list()]
    assert names == [
        "cascade:gpt-4o-mini[label=yes]>ref",
        "cascade:gpt-4o-mini[label=no]>ref",
        "cascade:gpt-4.1-nano[label=yes]>ref",
        "cascade:gpt-4.1-nano[label=no]>ref",
        "cascade:gpt-4o-mini+gpt-4.1-nano[agree]>ref",
    ]
    # A comparator without labels: consistency cascades only.
    assert [c.name for c in _config(cascades="auto", comparator="exact").cascade_list()] == [
        "cascade:gpt-4o-mini+gpt-4.1-nano[agree]>ref"
    ]
    assert _config().cascade_list() == []


def test_explicit_cascades_round_trip_through_the_stored_json():
    toml_form = [{"steps": [{"model": "gpt-4o-mini", "scorer": "label:yes"}]}]
    config = _config(cascades=toml_form, delta_weights={"cascade:gpt-4o-mini[label=yes]>ref": 2})
    assert config.route_names()[-1] == "cascade:gpt-4o-mini[label=yes]>ref"
    again = SmartConfig.model_validate_json(config.model_dump_json())
    assert again.route_names() == config.route_names()
    python_form = [Cascade([CascadeStep("gpt-4o-mini", "label:yes", threshold=0.9)], name="c1")]
    assert _config(cascades=python_form).route_names()[-1] == "c1"


def test_a_list_of_thresholds_is_a_grid_of_cascades_and_one_family():
    grid = [{"model": "gpt-4o-mini", "scorer": "logprob", "threshold": [0.9, 0.99, 0.95]}]
    config = _config(cascades=[{"steps": grid}])
    names = [c.name for c in config.cascade_list()]
    assert names == [f"cascade:gpt-4o-mini[logprob>={t:g}]>ref" for t in (0.9, 0.99, 0.95)]
    # most conservative (highest threshold) first, whatever the declared order
    assert threshold_families(config.cascade_list()) == [tuple(names[i] for i in (1, 2, 0))]
    again = SmartConfig.model_validate_json(config.model_dump_json())
    assert again.route_names() == config.route_names()


def test_families_group_cascades_that_differ_in_one_steps_threshold_only():
    def two_steps(first: float, second: float, scorer: str = "logprob") -> Cascade:
        return Cascade(
            [CascadeStep("a", scorer, threshold=first), CascadeStep("b", "logprob", second)]
        )

    grid = [two_steps(0.9, 0.5), two_steps(0.8, 0.5), two_steps(0.95, 0.5)]
    other_step = [two_steps(0.9, 0.7)]  # varies the second step: a family with grid[0] at most
    lone = [two_steps(0.9, 0.5, scorer="label:A")]  # another scorer: no family
    families = threshold_families([*grid, *other_step, *lone])
    assert families == [tuple(c.name for c in (grid[2], grid[0], grid[1]))]
    untrained = [Cascade([CascadeStep("a", "learned", threshold=t)]) for t in (0.8, 0.9)]
    assert threshold_families(untrained) == []


@pytest.mark.parametrize(
    ("cascades", "message"),
    [
        ([{"steps": [{"model": "gpt-4o", "scorer": "label:yes"}]}], "calls the reference"),
        ([{"steps": [{"model": "llama", "scorer": "label:yes"}]}], "not a candidate"),
        ([{"steps": []}], "at least one step"),
        ([{"steps": [{"model": "gpt-4o-mini"}]}], "give 'model' and 'scorer'"),
        ("sometimes", "'auto' or a list"),
        (
            [{"steps": [{"model": "gpt-4o-mini", "scorer": "logprob", "threshold": []}]}],
            "a list of thresholds",
        ),
        (
            [
                {
                    "steps": [{"model": "gpt-4o-mini", "scorer": "logprob", "threshold": [0.9]}],
                    "name": "mine",
                }
            ],
            "without 'name'",
        ),
        (
            [{"steps": [{"model": "gpt-4o-mini", "scorer": "label:yes"}], "name": "gpt-4.1-nano"}],
            "is taken",
        ),
    ],
)
def test_bad_cascades_fail_at_start_up_naming_the_problem(cascades, message):
    with pytest.raises(ConfigError, match=message):
        _config(cascades=cascades)


def test_a_function_scorer_keeps_the_config_out_of_the_store_rather_than_misrecorded():
    from smart_core import SmartRouter

    cascade = Cascade([CascadeStep("gpt-4o-mini", lambda a: 1.0)], name="c")
    config = _config(cascades=[cascade])
    with pytest.raises(Exception, match="function scorer"):
        config.model_dump_json()
    router = SmartRouter(config)
    router.policy()  # records the config when it can; here it cannot, and must not fail
    assert router.store.get_meta(config.task, "config") is None
