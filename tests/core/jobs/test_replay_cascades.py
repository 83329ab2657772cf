"""``smart replay --cascades``: cascades built over the logged answers, the oracle over models
and cascades, plain mixing beside it, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smart_core.cli import app
from smart_core.jobs.replay import load_replay, oracle_savings, replay
from smart_core.task.comparators import parse_comparator
from smart_core.task.config import ModelSpec, SmartConfig

REF, MINI = "gpt-4o", "gpt-4o-mini"
LABEL_A = "cascade:gpt-4o-mini[label=A]>ref"


def _rows(n: int = 400) -> list[dict]:
    """The reference answers A on half the items; MINI always says A there, and on the other
    half says A on a tenth (wrong) and a wrong other letter on the rest. MINI alone agrees on
    50 %; "keep MINI's A, else the reference" agrees on 95 % at about half the reference's cost."""
    rows = []
    for i in range(n):
        ref = "A" if i % 2 == 0 else "BCD"[i % 3]
        wrong = "B" if ref != "B" else "C"
        mini = "A" if ref == "A" or (i // 2) % 10 == 0 else wrong
        rows.append(
            {
                "id": str(i),
                "outputs": {REF: {"text": ref, "cost": 10.0}, MINI: {"text": mini, "cost": 0.1}},
            }
        )
    return rows


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_oracle_with_cascades_is_the_cheapest_mix_over_models_and_cascades(tmp_path):
    items = load_replay(_write(tmp_path / "r.jsonl", _rows()))
    free = {"input_price": 0.0, "output_price": 0.0}
    kw = dict(
        task="r",
        epsilon=0.05,
        reference=ModelSpec(name=REF, **free),
        candidates=[ModelSpec(name=MINI, **free)],
        comparator="choice:A,B,C,D",
        batch_size=len(items),
    )
    comp = parse_comparator("choice:A,B,C,D")
    wrong_a = sum(1 for it in items if it.outputs[MINI].text == "A" != it.outputs[REF].text)
    share = wrong_a / len(items)  # what the cascade gets wrong: MINI's wrong A's
    escalated = sum(1 for it in items if it.outputs[MINI].text != "A") / len(items)
    cascade_cost = 0.1 + 10.0 * escalated
    # Plain mixing: MINI agrees on 50 %, so it carries at most a share 0.05 / 0.5 = 0.1.
    plain = 10.0 / (0.9 * 10.0 + 0.1 * 0.1)
    assert oracle_savings(items, SmartConfig(**kw), comp) == pytest.approx(plain)
    # The cascade differs on `share` <= epsilon: it can carry everything.
    assert share <= 0.05
    with_cascades = oracle_savings(items, SmartConfig(**kw, cascades="auto"), comp)
    assert with_cascades == pytest.approx(10.0 / cascade_cost)
    assert with_cascades > 1.8 * plain


def test_replay_with_cascades_reports_them_beside_plain_mixing(tmp_path):
    path = _write(tmp_path / "r.jsonl", _rows(600))
    report = replay(
        path,
        reference=REF,
        epsilon=0.1,
        comparator="choice:A,B,C,D",
        orders=2,
        workers=1,
        cascades="auto",
    )
    assert report.cascades == "auto"
    assert report.oracle_savings_cascades > report.oracle_savings
    assert report.plain_savings == report.plain_savings  # measured (not NaN)
    assert report.violation_rate == 0
    # The cascades were routes: each order's routes are named as the config names them.
    names = {r for o in report.orders for r in o.routes}
    assert names <= {REF, MINI, LABEL_A, *(f"cascade:gpt-4o-mini[label={v}]>ref" for v in "BCD")}


def test_the_command_line_takes_auto_or_a_toml_file(tmp_path):
    path = _write(tmp_path / "r.jsonl", _rows(200))
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[[cascades]]\nsteps = [{model = "gpt-4o-mini", scorer = "label:A"}]\n', encoding="utf-8"
    )
    runner = CliRunner()
    args = ["replay", str(path), "--reference", REF, "--epsilon", "0.1", "--orders", "1"]
    args += ["--comparator", "choice:A,B,C,D", "--json", "--cascades"]
    result = runner.invoke(app, [*args, str(toml)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["cascades"] == [LABEL_A]
    assert report["oracle_savings_cascades"] > report["oracle_savings"]
    result = runner.invoke(app, [*args, str(tmp_path / "missing.toml")], env={"COLUMNS": "400"})
    assert result.exit_code != 0 and "give 'auto' or a TOML file" in result.output
