"""``smart replay``: the real engine over logged outputs, costs, and file-format errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from smart_core import Price, PriceTable, ReplayFormatError, Usage
from smart_core.jobs.replay import load_replay, replay

REF = "gpt-4o"
MINI = "gpt-4o-mini"
NANO = "gpt-4.1-nano"
LETTERS = "ABCD"

#: routerbench data shipped next to the repository (absent in most checkouts).
ROUTERBENCH = Path(__file__).parents[4] / "shared" / "data" / "routerbench"


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def synthetic_items(n: int = 600, seed: int = 42) -> list[dict]:
    """The reference (tokens only), MINI agreeing on 97 % of items (logged cost) and NANO on
    50 % (tokens only, cheaper)."""
    rng = random.Random(seed)
    wrong_mini = set(rng.sample(range(n), round(0.03 * n)))
    wrong_nano = set(rng.sample(range(n), n // 2))
    rows = []
    for i in range(n):
        right = LETTERS[rng.randrange(4)]
        wrong = LETTERS[(LETTERS.index(right) + 1) % 4]
        rows.append(
            {
                "id": f"q{i}",
                "input": f"question {i}",
                "outputs": {
                    REF: {"text": right, "input_tokens": 500, "output_tokens": 5},
                    MINI: {"text": wrong if i in wrong_mini else right, "cost": 0.00008},
                    NANO: {
                        "text": wrong if i in wrong_nano else right,
                        "input_tokens": 500,
                        "output_tokens": 5,
                    },
                },
            }
        )
    return rows


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    path = write_jsonl(tmp_path_factory.mktemp("replay") / "synthetic.jsonl", synthetic_items())
    return replay(path, reference=REF, epsilon=0.1, orders=20, comparator="exact", seed=0)


@pytest.mark.slow
def test_replay_report_saves_money_within_the_guarantee(synthetic_report):
    """20 orders at epsilon 0.1 over a 97 %/50 % pair: savings > 1, at most delta of orders
    exceed epsilon, mean differing share <= epsilon, route shares sum to 1."""
    r = synthetic_report
    assert r.reference == REF
    assert set(r.candidates) == {MINI, NANO}
    assert r.items == 600 and len(r.orders) == 20
    assert (r.epsilon, r.delta, r.method, r.comparator) == (0.1, 0.05, "anytime", "exact")
    assert r.savings > 1
    assert r.violation_rate <= r.delta
    assert r.disagreement <= r.epsilon
    assert r.max_disagreement >= r.disagreement
    assert sum(r.routes.values()) == pytest.approx(1.0)
    assert set(r.routes) <= {REF, MINI, NANO}
    assert r.routes.get(MINI, 0.0) > r.routes.get(NANO, 0.0)  # the good candidate does the work


@pytest.mark.slow
def test_replay_orders_are_consistent(synthetic_report):
    """Each order's numbers agree with each other: the reference-only cost is the same priced sum
    for every order, savings = reference cost / cost, and 'exceeded' means above epsilon."""
    ref_cost = 600 * PriceTable().cost(REF, Usage(500, 5))
    seeds = [o.seed for o in synthetic_report.orders]
    assert seeds == list(range(20))
    for o in synthetic_report.orders:
        assert o.reference_cost == pytest.approx(ref_cost)
        assert o.savings == pytest.approx(o.reference_cost / o.cost)
        assert o.exceeded == (o.disagreement > 0.1)
        assert sum(o.routes.values()) == 600
        assert o.probes >= 1
    assert synthetic_report.reference_cost == pytest.approx(ref_cost)
    doc = synthetic_report.to_dict()
    assert {"savings", "violation_rate", "routes", "orders"} <= set(doc)


def test_replay_prices_tokens_when_no_cost_is_logged(tmp_path):
    """With tokens only, a call costs tokens x the model's list price; a logged cost wins over
    tokens; ``prices`` overrides the list price. In a batch of ten at epsilon 0.1 no probe can
    pay and the budget affords exactly one differing answer, so one item goes to the candidate
    and nine to the reference."""
    ref_usage, mini_usage = Usage(1000, 50), Usage(2000, 40)
    ref_price = (1000 * 2.50 + 50 * 10.00) / 1e6
    mini_price = (2000 * 0.15 + 40 * 0.60) / 1e6
    outputs = {
        REF: {"text": "A", "input_tokens": 1000, "output_tokens": 50},
        MINI: {"text": "A", "input_tokens": 2000, "output_tokens": 40},
    }

    def rows(outputs):
        return [{"id": f"item-{i}", "outputs": outputs} for i in range(10)]

    path = write_jsonl(tmp_path / "ten.jsonl", rows(outputs))
    report = replay(path, reference=REF, epsilon=0.1, orders=1)
    assert PriceTable().cost(REF, ref_usage) == pytest.approx(ref_price)
    assert PriceTable().cost(MINI, mini_usage) == pytest.approx(mini_price)
    assert report.reference_cost == pytest.approx(10 * ref_price)
    assert report.cost == pytest.approx(9 * ref_price + mini_price)
    assert report.orders[0].probes == 0

    logged_outputs = {REF: {**outputs[REF], "cost": 0.5}, MINI: outputs[MINI]}
    logged = replay(
        write_jsonl(tmp_path / "logged.jsonl", rows(logged_outputs)),
        reference=REF,
        epsilon=0.1,
        orders=1,
    )
    assert logged.reference_cost == pytest.approx(10 * 0.5)
    assert logged.cost == pytest.approx(9 * 0.5 + mini_price)

    priced = replay(path, reference=REF, epsilon=0.1, orders=1, prices={REF: Price(1.0, 2.0)})
    assert priced.reference_cost == pytest.approx(10 * (1000 * 1.0 + 50 * 2.0) / 1e6)


# -- errors -----------------------------------------------------------------------------------


def test_malformed_json_names_the_line(tmp_path):
    """Invalid JSON on line 3 -> ReplayFormatError mentioning 'file:3'."""
    rows = synthetic_items(2)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1]) + "\n{not json\n")
    with pytest.raises(ReplayFormatError, match=r"bad\.jsonl:3\b") as info:
        load_replay(path)
    assert "JSON" in str(info.value)
    with pytest.raises(ReplayFormatError, match=":3"):
        replay(path, reference=REF, epsilon=0.1, orders=1)


def test_line_numbers_count_blank_lines(tmp_path):
    """Blank lines are skipped but still counted, so the number matches the editor's."""
    rows = synthetic_items(1)
    path = tmp_path / "gap.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n\n\n[1, 2]\n")
    with pytest.raises(ReplayFormatError, match=r"gap\.jsonl:4: .*JSON object"):
        load_replay(path)


def test_missing_outputs_and_bad_answers_are_reported_with_the_line(tmp_path):
    """An item without 'outputs', or an output without 'text', is an error naming the line."""
    path = write_jsonl(tmp_path / "no_outputs.jsonl", [{"id": "x", "input": "q"}])
    with pytest.raises(ReplayFormatError, match=r":1: missing 'outputs'"):
        load_replay(path)
    path = write_jsonl(tmp_path / "no_text.jsonl", [*synthetic_items(1), {"outputs": {REF: {}}}])
    with pytest.raises(ReplayFormatError, match=r":2: outputs\['gpt-4o'\]"):
        load_replay(path)


def test_item_missing_the_reference_names_the_item_and_the_reference(tmp_path):
    """An item with no reference output is an error naming the item id and the reference."""
    rows = synthetic_items(5)
    del rows[2]["outputs"][REF]
    path = write_jsonl(tmp_path / "noref.jsonl", rows)
    with pytest.raises(ReplayFormatError) as info:
        replay(path, reference=REF, epsilon=0.1, orders=1)
    message = str(info.value)
    assert "'q2'" in message
    assert repr(REF) in message


def test_unknown_candidate_is_an_error(tmp_path):
    """A candidate that never appears in the file is named in the error."""
    path = write_jsonl(tmp_path / "ok.jsonl", synthetic_items(5))
    with pytest.raises(ReplayFormatError, match="claude-3-5-haiku"):
        replay(path, reference=REF, candidates=["claude-3-5-haiku"], epsilon=0.1, orders=1)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(ReplayFormatError, match="no items"):
        load_replay(path)


# -- real data --------------------------------------------------------------------------------


@pytest.mark.skipif(
    not (ROUTERBENCH / "arc_challenge.jsonl").is_file(),
    reason=f"routerbench data not found at {ROUTERBENCH} (only shipped with the shared data)",
)
@pytest.mark.slow
def test_routerbench_arc_challenge_stays_within_epsilon():
    """routerbench arc_challenge (multiple choice, gpt-4-1106-preview as reference): 3 orders at
    epsilon 0.1 with the choice comparator never exceed epsilon."""
    report = replay(
        ROUTERBENCH / "arc_challenge.jsonl",
        reference="gpt-4-1106-preview",
        epsilon=0.1,
        orders=3,
        comparator="choice:A,B,C,D",
    )
    assert report.items > 1000
    assert report.violation_rate == 0
    assert report.disagreement <= 0.1
    assert report.savings > 1


def test_the_oracle_is_the_cheapest_mix_with_the_files_true_agreement(tmp_path):
    """Ten items; the cheap model agrees on 8 at a tenth of the reference's cost. At epsilon 0.1
    the best mix with known rates sends half the items to it: cost 0.5 * 1 + 0.5 * 10 = 5.5."""
    rows = [
        {
            "id": str(i),
            "outputs": {
                REF: {"text": "A", "cost": 10.0},
                MINI: {"text": "A" if i < 8 else "B", "cost": 1.0},
            },
        }
        for i in range(10)
    ]
    from smart_core.jobs.replay import oracle_savings
    from smart_core.task.comparators import parse_comparator
    from smart_core.task.config import ModelSpec, SmartConfig

    items = load_replay(write_jsonl(tmp_path / "r.jsonl", rows))
    free = {"input_price": 0.0, "output_price": 0.0}
    config = SmartConfig(
        task="r",
        epsilon=0.1,
        reference=ModelSpec(name=REF, **free),
        candidates=[ModelSpec(name=MINI, **free)],
        batch_size=10,
    )
    assert oracle_savings(items, config, parse_comparator("exact")) == pytest.approx(10 / 5.5)
    report = replay(
        tmp_path / "r.jsonl", reference=REF, epsilon=0.1, orders=1, items=items, workers=1
    )
    assert report.oracle_savings == pytest.approx(10 / 5.5)


def test_the_certified_oracle_pays_for_one_look_at_the_whole_of_delta(tmp_path):
    """400 items; the cheap model agrees on 380 (95 %) at a tenth of the reference's cost. With
    its rate known, certifying it at epsilon 0.1 still takes the smallest sample whose one
    exact look bounds the differing answers among the rest by 40: those probes pay both models,
    the rest pays the cheap one. A model that never agrees cannot be certified at all."""
    from smart_core.jobs.replay import certified_oracle_savings, oracle_savings
    from smart_core.stats.fixed_look import look_size
    from smart_core.task.comparators import parse_comparator
    from smart_core.task.config import ModelSpec, SmartConfig

    rows = [
        {
            "id": str(i),
            "outputs": {
                REF: {"text": "A", "cost": 10.0},
                MINI: {"text": "A" if i % 20 else "B", "cost": 1.0},
                "junk": {"text": "C", "cost": 0.1},
            },
        }
        for i in range(400)
    ]
    items = load_replay(write_jsonl(tmp_path / "r.jsonl", rows))
    free = {"input_price": 0.0, "output_price": 0.0}
    config = SmartConfig(
        task="r",
        epsilon=0.1,
        reference=ModelSpec(name=REF, **free),
        candidates=[ModelSpec(name=MINI, **free), ModelSpec(name="junk", **free)],
        batch_size=400,
    )
    comp = parse_comparator("exact")
    n = look_size(0.95, 400, 40.0, 0.05, most=399)
    assert n is not None and 20 < n < 200
    expected = 400 * 10.0 / (n * 11.0 + (400 - n) * 1.0)
    certified = certified_oracle_savings(items, config, comp)
    assert certified == pytest.approx(expected)
    assert certified < oracle_savings(items, config, comp)  # probes are what the oracle skips
