"""`smart demo` (simulated models, no keys) and `smart report` over the store a run leaves."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from smart_core._demo import make_workload, simulated_answer
from smart_core.cli import app

runner = CliRunner()


def test_workload_is_deterministic_and_harder_items_err_more():
    a, b = make_workload(2000), make_workload(2000)
    assert a == b and len({it.id for it in a}) == 2000
    easy = [it for it in a if it.difficulty < 0.3]
    hard = [it for it in a if it.difficulty > 0.7]
    model = "anthropic:claude-haiku-4-5"

    def err(items):
        return sum(simulated_answer(model, it) != it.label for it in items) / len(items)

    assert err(hard) > 3 * err(easy)
    assert all(simulated_answer("openai:gpt-4o", it) == it.label for it in a)


@pytest.mark.parametrize(
    ("pipeline", "state", "task_name", "says"),
    [
        (
            "langchain",
            "demo-langchain.smart.db",
            "demo-triage-lcel",
            "LCEL `prompt | SmartChatModel",
        ),
        ("engine", "demo.smart.db", "demo-triage", "the `smart run` engine"),
    ],
)
def test_demo_prints_savings_and_disagreement_and_plots(tmp_path, pipeline, state, task_name, says):
    """Both pipelines label every ticket below the reference-only cost with a realized
    disagreement within epsilon, plot it, and leave a store that `smart report` reads."""
    args = ["demo", "--items", "300", "--out", str(tmp_path), "--pipeline", pipeline]
    res = runner.invoke(app, args, env={})
    assert res.exit_code == 0, res.output
    assert "SIMULATED models" in res.output
    assert says in res.output
    assert "cheaper" in res.output and "differing from the reference" in res.output
    doc = json.loads((tmp_path / "demo.json").read_text())
    assert doc["items"] == 300 and doc["simulated"] is True
    assert doc["spent"] < doc["reference_cost"]
    assert doc["realized_disagreement"] <= doc["epsilon"]
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    # The demo's store is a normal store: `smart report` reads it.
    store = f"sqlite:///{tmp_path / state}"
    rep = runner.invoke(app, ["report", "--store", store, "--json"])
    assert rep.exit_code == 0, rep.output
    (task,) = json.loads(rep.stdout)
    assert task["task"] == task_name and task["requests"] == 300
    ledger = task["ledger"]
    assert ledger["spent"] == doc["spent"] or abs(ledger["spent"] - doc["spent"]) < 1e-9
    lo, hi = ledger["savings_interval"]
    assert lo <= ledger["savings"] <= hi
    assert task["certificate"]["bound"] >= 1 - task["certificate"]["effective_epsilon"] - 1e-9
    text = runner.invoke(app, ["report", "--store", store, "--png", str(tmp_path / "r.png")])
    assert text.exit_code == 0, text.output
    for word in ("requests 300", "savings", "probe/audit overhead", "certificate now", "mix"):
        assert word in text.output
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_demo_live_without_keys_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    res = runner.invoke(app, ["demo", "--live", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "needs OPENAI_API_KEY in the" in " ".join(res.output.split())


def test_report_errors_and_unconfigured_tasks(tmp_path):
    res = runner.invoke(app, ["report", "--store", f"sqlite:///{tmp_path / 'none.db'}"])
    assert res.exit_code == 2 and "no such file" in res.output
    from smart_core import SqliteStore

    store = SqliteStore(tmp_path / "s.db")
    store.add("other", {"requests": 3, "spent": 0.5, "call.n:m": 3, "call.cost:m": 0.5})
    store.close()
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = runner.invoke(app, ["report", "--store", url])
    assert res.exit_code == 0 and "no configuration recorded" in res.output
    res = runner.invoke(app, ["report", "--store", url, "--task", "nope"])
    assert res.exit_code == 2 and "'other'" in res.output


def test_demo_unknown_pipeline_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["demo", "--items", "5", "--out", str(tmp_path), "--pipeline", "x"])
    assert res.exit_code == 2
    assert "'langchain'" in res.output and "'engine'" in res.output
