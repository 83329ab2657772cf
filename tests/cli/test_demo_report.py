"""`smart demo` (simulated models, no keys) and `smart report` over the store a run leaves."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from smart_core.cli import app
from smart_core.jobs.demo import make_workload, simulated_answer

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
@pytest.mark.slow
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
    words = ("requests 300", "savings", "probe/audit overhead", "certificate now", "routed:")
    for word in words:
        assert word in text.output
    # A batch of 300 at epsilon 0.05: a count against a budget of 15, no "guaranteed agreement".
    assert "gpt-4o's (budget 15)" in " ".join(text.output.split())
    assert "guaranteed agreement" not in text.output
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


# -- batch mode states its guarantee; failures are visible ---------------------------------------

REF, MINI, NANO = "gpt-4o", "gpt-4o-mini", "gpt-4.1-nano"


def _batch_store(tmp_path, *, batch_size: int | None = 1000) -> str:
    """A store holding a finished batch of 1,000 (as `smart run` leaves it): 300 probes, 500
    items to mini, 14 to nano; nano's provider also failed 40 times, and the comparator raised
    on 3 of mini's answers."""
    from smart_core import SmartConfig, SqliteStore
    from smart_core.policy import keys as K

    config = SmartConfig(
        task="tickets",
        epsilon=0.05,
        reference=REF,
        candidates=[MINI, NANO],
        batch_size=batch_size,
    )
    store = SqliteStore(tmp_path / "run.db")
    store.set_meta("tickets", "config", config.model_dump_json())
    store.add(
        "tickets",
        {
            K.REQUESTS: 1000.0,
            K.PROBES: 300.0,
            K.routed(REF): 486.0,
            K.routed(MINI): 500.0,
            K.routed(NANO): 14.0,
            K.probes_of(MINI): 300.0,
            K.agreements(MINI): 298.0,
            K.probes_of(NANO): 50.0,
            K.agreements(NANO): 45.0,
            K.failures(NANO): 40.0,
            K.fallbacks(NANO): 12.0,
            K.compare_errors(MINI): 3.0,
            K.SPENT: 1.0,
        },
    )
    store.close()
    return f"sqlite:///{tmp_path / 'run.db'}"


def test_report_of_a_batch_states_the_count_against_the_budget(tmp_path):
    """`smart report` on a finished batch says how many of its answers may differ against the
    budget, and each routed candidate's own bound, instead of "guaranteed agreement 1.0000"
    (the plan's bookkeeping for the items left, none at the end). The JSON certificate carries
    the same statement."""
    store = _batch_store(tmp_path)
    res = runner.invoke(app, ["report", "--store", store])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "guaranteed agreement" not in text
    statement = "at most 47 of the batch's 1,000 answers may differ from gpt-4o's (budget 50)"
    assert f"certificate now: {statement}, with confidence 95%" in text
    assert "agreement bounds of the candidates routed to: gpt-4o-mini >= 0." in text
    res = runner.invoke(app, ["report", "--store", store, "--json"])
    assert res.exit_code == 0, res.output
    (task,) = json.loads(res.stdout)
    cert = task["certificate"]
    assert (cert["mode"], cert["batch_size"], cert["budget"]) == ("batch", 1000, 50.0)
    assert cert["differing_at_most"] == pytest.approx(47.0)
    assert statement in cert["guarantee"]
    assert task["ledger"]["routed"] == {REF: 486, MINI: 500, NANO: 14}


def test_report_of_an_online_task_keeps_the_guaranteed_agreement(tmp_path):
    """Online the certificate line keeps its wording, and says 1 - epsilon where it says so
    (it used to print epsilon after "1 - effective epsilon")."""
    store = _batch_store(tmp_path, batch_size=None)
    res = runner.invoke(app, ["report", "--store", store])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "guaranteed agreement >= " in text and ">= 1 - epsilon = 0.9500" in text
    (task,) = json.loads(runner.invoke(app, ["report", "--store", store, "--json"]).stdout)
    assert task["certificate"]["differing_at_most"] is None


@pytest.mark.parametrize("batch_size", [1000, None])
def test_report_shows_failures_fallbacks_and_comparator_errors(tmp_path, batch_size):
    """A candidate whose provider fails shows its failures in the text and the JSON, not
    "0 routed, 0/0 agreed" alone; comparator errors too."""
    store = _batch_store(tmp_path, batch_size=batch_size)
    res = runner.invoke(app, ["report", "--store", store])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # the console wraps long lines
    nano = text[text.index(f" {NANO}: ") :]
    assert nano.split(" comparator errors ")[0].endswith("failed 40 (fell back 12),")
    mini = text[text.index(f" {MINI}: ") : text.index(f" {NANO}: ")]
    assert "comparator errors 3" in mini
    (task,) = json.loads(runner.invoke(app, ["report", "--store", store, "--json"]).stdout)
    routes = task["ledger"]["routes"]
    assert (routes[NANO]["failures"], routes[NANO]["fallbacks"]) == (40, 12)
    assert routes[MINI]["compare_errors"] == 3


# -- the chart ----------------------------------------------------------------------------------


def _rows(n: int = 400, *, batch: bool = True) -> list[dict]:
    """Rows as a batch run writes them: 100 probes, then mini, its ceiling growing to 30."""
    rows = []
    for i in range(n):
        probe = i < 100
        row = {
            "route": REF if probe else MINI,
            "probe": probe,
            "cost": 0.004 if probe else 0.0003,
            "ref_cost": 0.004 if probe else None,
            # What a batch's bookkeeping looks like: "bound" 1, slack above epsilon.
            "bound": 1.0 if batch else 0.96,
            "effective_epsilon": 0.2 if batch else 0.05,
        }
        if batch:
            row.update(batch_size=n, budget=0.05 * n, differing_at_most=min(max(i - 99, 0), 14.6))
        rows.append(row)
    return rows


def _texts(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def _legend_clear_of_the_plot(fig, ax) -> bool:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    return not legend.overlaps(ax.get_window_extent(renderer))


@pytest.mark.slow
def test_batch_chart_counts_differing_answers_against_the_budget():
    """The third panel of a batch run is a count a reader compares at a glance: the budget
    (0.05 x 400 = 20 answers), the guaranteed ceiling so far (14 at the end) and the actual
    count; no per-request "allowed" line drawn at 0 under the realized share (it read like a
    violation), and the legend sits clear of the lines."""
    import matplotlib.pyplot as plt

    from smart_core.reporting.charts import run_figure

    realized = [(5 if i > 300 else 0) / i for i in range(1, 401)]  # 5 differed by the end
    fig = run_figure(_rows(), epsilon=0.05, title="t", realized=realized)
    try:
        ax = fig.axes[2]
        labels = _texts(ax)
        assert not any("allowed per request" in label for label in labels)
        budget = next(line for line in ax.get_lines() if label_has(line, "budget"))
        assert set(budget.get_ydata()) == {20}
        assert "at most 20 of the 400 answers may differ" in budget.get_label()
        ceiling = next(line for line in ax.get_lines() if label_has(line, "guaranteed"))
        assert max(ceiling.get_ydata()) == 14
        actual = next(line for line in ax.get_lines() if label_has(line, "actually differed"))
        assert list(actual.get_ydata())[-1] == 5
        assert "at most 14 of 400 may differ (budget 20)" in ax.get_title()
        assert ax.get_ylabel() == "answers (count)"
        for panel in fig.axes:
            assert _legend_clear_of_the_plot(fig, panel)
    finally:
        plt.close(fig)


def label_has(line, word: str) -> bool:
    return word in line.get_label()


def test_online_chart_keeps_the_share_allowed_by_the_mix():
    """Online the third panel keeps the guaranteed share per request against epsilon, legend
    clear of the lines."""
    import matplotlib.pyplot as plt

    from smart_core.reporting.charts import run_figure

    fig = run_figure(_rows(batch=False), epsilon=0.05, title="t")
    try:
        ax = fig.axes[2]
        allowed = next(line for line in ax.get_lines() if label_has(line, "1 - bound"))
        assert list(allowed.get_ydata()) == pytest.approx([0.04] * 400)
        assert any("target: epsilon = 0.05" in label for label in _texts(ax))
        assert _legend_clear_of_the_plot(fig, ax)
    finally:
        plt.close(fig)


def test_batch_chart_of_rows_without_the_count_draws_the_ledgers_count_at_the_end():
    """Rows of a run whose certificates did not carry the count (older state files) still make
    a batch panel of counts: the budget, and the ledger's count now as a point at the last
    item; the panel spans the items (not matplotlib's default 0..1)."""
    import matplotlib.pyplot as plt

    from smart_core.reporting.charts import run_figure

    rows = [
        {k: v for k, v in r.items() if k not in ("batch_size", "budget", "differing_at_most")}
        for r in _rows()
    ]
    fig = run_figure(rows, epsilon=0.05, title="t", differing_at_most=14.6)
    try:
        ax = fig.axes[2]
        assert not any("allowed per request" in label for label in _texts(ax))
        budget = next(line for line in ax.get_lines() if label_has(line, "budget"))
        assert set(budget.get_ydata()) == {20}
        now = next(line for line in ax.get_lines() if label_has(line, "guaranteed now"))
        assert (list(now.get_xdata()), list(now.get_ydata())) == ([400], [14])
        assert ax.get_xlim()[1] >= 400
        assert "at most 14 of 400 may differ (budget 20)" in ax.get_title()
    finally:
        plt.close(fig)
