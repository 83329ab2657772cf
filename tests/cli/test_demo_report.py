"""`smart demo` (simulated models, no keys) and `smart report` over the store a run leaves."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from smart_core._demo import _PROMPT, LABELS, make_workload, responders, simulated_answer
from smart_core.cli import app
from smart_core.testing import FakeLLMServer

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


def test_demo_prints_savings_and_disagreement_and_plots(tmp_path):
    res = runner.invoke(app, ["demo", "--items", "300", "--out", str(tmp_path)], env={})
    assert res.exit_code == 0, res.output
    assert "SIMULATED models" in res.output
    assert "cheaper" in res.output and "differing from the reference" in res.output
    doc = json.loads((tmp_path / "demo.json").read_text())
    assert doc["items"] == 300 and doc["simulated"] is True
    assert doc["spent"] < doc["reference_cost"]
    assert doc["realized_disagreement"] <= doc["epsilon"]
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    # The demo's store is a normal store: `smart report` reads it.
    store = f"sqlite:///{tmp_path / 'demo.smart.db'}"
    rep = runner.invoke(app, ["report", "--store", store, "--json"])
    assert rep.exit_code == 0, rep.output
    (task,) = json.loads(rep.stdout)
    assert task["task"] == "demo-triage" and task["requests"] == 300
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


def test_same_workload_through_langchain_lcel_pipeline(tmp_path):
    """The demo's workload through `prompt | SmartChatModel` (what `smart demo` will run once the
    pipeline has a home in smart_langchain; smart_core may not import LangChain)."""
    from langchain_anthropic import ChatAnthropic
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    from smart_langchain import SmartChatModel

    items = make_workload(200, seed=5)
    with FakeLLMServer(responders(items)) as server:
        llm = SmartChatModel(
            reference=ChatOpenAI(model="gpt-4o", base_url=server.openai_base_url, api_key="x"),
            candidates=[
                ChatOpenAI(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="x"),
                ChatAnthropic(
                    model="claude-haiku-4-5", base_url=server.anthropic_base_url, api_key="x"
                ),
            ],
            epsilon=0.05,
            batch_size=len(items),
            comparator="choice:" + ",".join(LABELS),
            task="demo-lcel",
            store=f"sqlite:///{tmp_path / 'lcel.db'}",
            wait_for_probes=True,
            seed=0,
        )
        chain = ChatPromptTemplate.from_template(_PROMPT) | llm | StrOutputParser()
        inputs = [{"id": it.id, "text": it.text} for it in items]
        answers = asyncio.run(chain.abatch(inputs, config={"max_concurrency": 16}))
        ledger = llm.ledger()
        llm.close()
    differing = sum(a.strip() != it.label for a, it in zip(answers, items, strict=True))
    assert ledger.requests == 200
    assert differing / len(items) <= 0.05
