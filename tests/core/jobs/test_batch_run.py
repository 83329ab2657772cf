"""The `smart run` engine with in-process endpoints: every item once, resumable, failures kept."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from interrupt import Interrupt  # this folder is on sys.path

from smart_core import Answer, ConfigError, Usage, open_store
from smart_core.jobs.batch_run import BatchRun, load_items, render_prompt, run_batch, timeline
from smart_core.policy import keys as K

REF, MINI, HAIKU = "openai:gpt-4o", "openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest"


def _items(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "items.jsonl"
    rng = random.Random(1)
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"x{i}", "text": f"item {i}", "label": rng.choice("ab")}))
            fh.write("\n")
    return path


class Models:
    """Endpoints answering from the item's label; counts calls per (item, model)."""

    def __init__(
        self, path: Path, errors: dict[str, float], fail: dict[str, set[str]] | None = None
    ):
        self.labels = {json.loads(line)["id"]: json.loads(line)["label"] for line in path.open()}
        self.errors = errors
        self.fail = fail or {}
        self.calls: Counter[tuple[str, str]] = Counter()  # calls started
        self.answered: Counter[tuple[str, str]] = Counter()  # calls that returned an answer
        self.hook = None

    def endpoint(self, model: str):
        async def call(prompt: str) -> Answer:
            item = "x" + prompt.rsplit(" ", 1)[-1]
            if self.hook:
                await self.hook(item, model)
            self.calls[(item, model)] += 1
            await asyncio.sleep(0)
            if item in self.fail.get(model, set()):
                raise RuntimeError(f"{model} down")
            label = self.labels[item]
            if random.Random(f"{model}{item}").random() < self.errors.get(model, 0.0):
                label = "b" if label == "a" else "a"
            self.answered[(item, model)] += 1
            return Answer(text=label, usage=Usage(200, 1))

        return call

    def endpoints(self):
        return {m: self.endpoint(m) for m in (REF, MINI, HAIKU)}


#: Six candidates: a batch of them is screened.
SIX = [MINI, HAIKU, "openai:gpt-4.1-nano", "openai:gpt-4.1-mini", "openai:gpt-5-mini"]
SIX.append("anthropic:claude-haiku-4-5")


def _six_errors(best: float) -> dict[str, float]:
    """Error rates of the six: ``MINI`` errs on a share ``best`` of items, the others far more."""
    return {MINI: best, HAIKU: 0.3, **{m: 0.25 for m in SIX[2:]}}


def _run(path: Path, tmp_path: Path, **kw) -> BatchRun:
    kw.setdefault("candidates", [MINI, HAIKU])
    return BatchRun(
        input=path,
        prompt="Classify {text}",
        reference=REF,
        epsilon=0.1,
        output=tmp_path / "out.jsonl",
        comparator="choice:a,b",
        concurrency=8,
        **kw,
    )


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_item_once_in_input_order(tmp_path):
    path = _items(tmp_path, 300)
    models = Models(path, {MINI: 0.02, HAIKU: 0.3})
    result = asyncio.run(run_batch(_run(path, tmp_path), models.endpoints()))
    lines = _lines(tmp_path / "out.jsonl")
    assert [x["id"] for x in lines] == [f"x{i}" for i in range(300)]
    assert result.done == 300 and result.failed == {} and result.answered_now == 300
    assert max(models.calls.values()) == 1
    assert {"answer", "route", "certificate", "cost", "probe"} <= set(lines[0])
    assert lines[0]["certificate"]["mode"] == "batch"
    assert result.ledger.requests == 300
    assert sum(result.routes.values()) == 300
    assert len(timeline(result.state)) == 300


def test_interrupted_run_resumes_without_paying_twice(tmp_path):
    path = _items(tmp_path, 200)
    models = Models(path, {MINI: 0.02, HAIKU: 0.3})
    run = _run(path, tmp_path)
    calls = 0
    cut = Interrupt()

    async def stop_midway(item, model):
        nonlocal calls
        calls += 1
        if calls == 150:
            cut.stop()  # what asyncio.run does on Ctrl-C: cancel the main task

    models.hook = stop_midway
    cut.run(lambda: run_batch(run, models.endpoints()))
    first = _lines(tmp_path / "out.jsonl")
    assert 0 < len(first) < 200
    answered_before = {x["id"] for x in first}
    before = Counter(models.calls)
    models.hook = None
    result = asyncio.run(run_batch(run, models.endpoints()))
    lines = _lines(tmp_path / "out.jsonl")
    assert [x["id"] for x in lines] == [f"x{i}" for i in range(200)]
    assert result.resumed == len(first)
    # Nothing answered before the interruption was called again, and no model answered any
    # item twice (a call cut off by the interruption, which never returned, is made again).
    for (item, model), n in models.calls.items():
        if item in answered_before:
            assert n == before[(item, model)]
    assert max(models.answered.values()) == 1
    assert result.ledger.requests == 200


def test_candidate_failure_falls_back_and_reference_failure_is_retried_next_run(tmp_path):
    path = _items(tmp_path, 120)
    models = Models(
        path, {}, fail={MINI: {f"x{i}" for i in range(120)}, REF: {"x7"}, HAIKU: {"x7"}}
    )
    run = _run(path, tmp_path, item_attempts=1)
    result = asyncio.run(run_batch(run, models.endpoints()))
    assert set(result.failed) == {"x7"}
    assert "x7" not in {x["id"] for x in _lines(tmp_path / "out.jsonl")}
    assert result.done == 119
    models.fail = {}
    result = asyncio.run(run_batch(run, models.endpoints()))
    assert result.failed == {} and result.done == 120 and result.answered_now == 1
    assert len(_lines(tmp_path / "out.jsonl")) == 120


def test_changed_arguments_need_restart(tmp_path):
    path = _items(tmp_path, 20)
    models = Models(path, {})
    asyncio.run(run_batch(_run(path, tmp_path), models.endpoints()))
    changed = _run(path, tmp_path)
    changed.epsilon = 0.2
    with pytest.raises(ConfigError, match="--restart"):
        asyncio.run(run_batch(changed, models.endpoints()))
    result = asyncio.run(run_batch(changed, models.endpoints(), restart=True))
    assert result.done == 20 and result.resumed == 0


def test_csv_items_and_prompt_errors(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("id,text\nA,hello\nB,world\n")
    items = load_items(path)
    assert [i.id for i in items] == ["A", "B"]
    assert render_prompt("Say {text}", items[0]) == "Say hello"
    with pytest.raises(ConfigError, match=r"\{review\}.*fields are \['id', 'text'\]"):
        render_prompt("Say {review}", items[0])
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n')
    with pytest.raises(ConfigError, match="appears twice"):
        load_items(dup)
    with pytest.raises(ConfigError, match="no such file"):
        load_items(tmp_path / "nope.jsonl")


def test_a_bad_key_stops_the_run_at_once_and_a_fixed_rerun_finishes(tmp_path):
    from smart_core import ProviderError

    path = _items(tmp_path, 60)
    models = Models(path, {})
    endpoints = models.endpoints()

    async def unauthorized(prompt):
        raise ProviderError("openai:gpt-4o: call failed (HTTP 401, not retried)", 401)

    run = _run(path, tmp_path)
    with pytest.raises(ProviderError, match="401"):
        asyncio.run(run_batch(run, {**endpoints, REF: unauthorized}))
    result = asyncio.run(run_batch(run, endpoints))
    assert result.done == 60 and result.failed == {}
    assert [x["id"] for x in _lines(tmp_path / "out.jsonl")] == [f"x{i}" for i in range(60)]


def test_slow_differing_answers_do_not_stall_the_run_and_every_probe_settles(tmp_path):
    """Differing candidate answers come back late (as long answers do): the run still answers
    every item, the bounds wait for probes in decision order without blocking anything, and at
    the end no probe is left open."""
    path = _items(tmp_path, 200)
    models = Models(path, {MINI: 0.1, HAIKU: 0.3})

    async def late_if_differing(item: str, model: str) -> None:
        if model != REF and random.Random(f"{model}{item}").random() < models.errors[model]:
            await asyncio.sleep(0.02)

    models.hook = late_if_differing
    result = asyncio.run(run_batch(_run(path, tmp_path), models.endpoints()))
    assert result.done == 200 and result.failed == {}
    counters = open_store(f"sqlite:///{result.state}").read(_run(path, tmp_path).task)
    assert counters[K.probes_of(MINI)] > 0
    for model in (MINI, HAIKU):
        assert counters.get(K.probes_open(model), 0.0) == 0.0


def test_state_files_of_earlier_runs_gain_the_batch_count_column_and_still_chart(tmp_path):
    """A state file written before the run table had ``differing_at_most`` reads back (NULL)
    and gains the column when a run opens it; new rows carry each certificate's count."""
    import sqlite3

    from smart_core.stores import SqliteRunState

    path = tmp_path / "old.smart.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE run_done (item TEXT PRIMARY KEY, idx INTEGER NOT NULL, "
        "seq INTEGER NOT NULL, line TEXT NOT NULL, route TEXT NOT NULL, probe INTEGER NOT NULL, "
        "cost REAL NOT NULL, ref_cost REAL, bound REAL NOT NULL, mix TEXT NOT NULL, "
        "effective_epsilon REAL NOT NULL)"
    )
    conn.execute("INSERT INTO run_done VALUES ('a', 0, 1, '{}', 'ref', 1, 0.1, 0.1, 1, '{}', 0.05)")
    conn.commit()
    conn.close()
    assert timeline(path)[0]["differing_at_most"] is None
    db = SqliteRunState(path, "run")
    row = {"route": "mini", "probe": False, "cost": 0.01, "ref_cost": None, "bound": 1.0}
    assert db.save_done(
        "b", 1, "{}", {**row, "mix": {}, "effective_epsilon": 1.0, "differing_at_most": 3.5}
    )
    db.close()
    rows = timeline(path)
    assert [r["differing_at_most"] for r in rows] == [None, 3.5]
    assert [r["seq"] for r in rows] == [1, 2]


def test_a_run_of_six_candidates_is_screened_then_certified_and_every_probe_settles(tmp_path):
    """Six candidates: the run screens them, certifies the best on probes decided after
    screening (its own counters), and ends with every item answered once, no probe left open in
    either stage, and the realized disagreement within epsilon. Differing answers come back
    late, so screening's last probes are still out when certification begins."""
    many = SIX
    path = _items(tmp_path, 600)
    errors = _six_errors(0.02)
    models = Models(path, errors)

    async def late_if_differing(item: str, model: str) -> None:
        if model != REF and random.Random(f"{model}{item}").random() < models.errors[model]:
            await asyncio.sleep(0.01)

    models.hook = late_if_differing
    run = _run(path, tmp_path, candidates=many)
    result = asyncio.run(run_batch(run, {m: models.endpoint(m) for m in [REF, *many]}))
    assert result.done == 600 and result.failed == {}
    counters = open_store(f"sqlite:///{result.state}").read(run.task)
    assert 24 <= counters[K.SCREENED] <= 48  # 8 % of the batch at most
    assert counters[K.cert_probes(MINI)] > 0  # the good one certified on fresh probes
    for model in many:
        assert counters.get(K.probes_open(model), 0.0) == 0.0
        assert counters.get(K.cert_open(model), 0.0) == 0.0
    assert counters[K.routed(MINI)] > 300  # and it carries most of the batch
    out = _lines(tmp_path / "out.jsonl")
    labels = {json.loads(line)["id"]: json.loads(line)["label"] for line in path.open()}
    assert sum(o["answer"] != labels[o["id"]] for o in out) <= 0.1 * 600


def test_the_progress_shows_the_count_the_decisions_keep_within_the_budget(tmp_path):
    """Mid-run, the progress ledger reads the bounds at the settled prefix, as the decisions
    do: read from the counters alone, every probe in flight would count as differing, and the
    count of answers that may differ could show above the budget though no decision allowed it."""
    path = _items(tmp_path, 600)
    models = Models(path, {MINI: 0.05, HAIKU: 0.3})

    async def slow_candidates(item: str, model: str) -> None:
        if model != REF:
            await asyncio.sleep(0.05)

    models.hook = slow_candidates
    seen = []
    run = replace(_run(path, tmp_path), concurrency=64)
    result = asyncio.run(
        run_batch(
            run,
            models.endpoints(),
            progress=lambda n, ledger, total: seen.append(ledger),
            progress_every=0.0,  # a ledger at every item
        )
    )
    assert result.done == 600 and len(seen) == 601
    assert all(x.differing_at_most <= x.budget + 1e-9 for x in seen)
    assert max(x.differing_at_most for x in seen) > 0.5 * seen[-1].budget  # the budget is used


def test_the_progress_counts_every_item_but_builds_a_ledger_a_few_times_a_second(tmp_path):
    path = _items(tmp_path, 300)
    models = Models(path, {MINI: 0.02, HAIKU: 0.3})
    calls = []
    result = asyncio.run(
        run_batch(
            _run(path, tmp_path),
            models.endpoints(),
            progress=lambda n, ledger, total: calls.append((n, ledger.requests, total)),
            progress_every=3600.0,
        )
    )
    assert result.done == 300
    # the start, then once every item is done: all 300 counted, the last ledger the run's end
    assert calls == [(0, 0, 300), (300, 300, 300)]


def test_with_probes_in_flight_the_leaders_looks_read_the_settled_prefix(tmp_path):
    """32 items in flight and a leader that needs many probes (it errs on 7 % of items, at
    epsilon 0.10): its looks are read on the first look probes decided as soon as those are in,
    so almost every certification probe joins the looks' sample. Waiting at each look's size
    until every look probe was in let three of four certification probes pass by untagged."""
    many = SIX
    path = _items(tmp_path, 1200)
    errors = _six_errors(0.07)
    models = Models(path, errors)

    async def slow_candidates(item: str, model: str) -> None:
        if model != REF:
            await asyncio.sleep(0.002)

    models.hook = slow_candidates
    run = replace(_run(path, tmp_path, candidates=many), concurrency=32)
    result = asyncio.run(run_batch(run, {m: models.endpoint(m) for m in [REF, *many]}))
    assert result.done == 1200 and result.failed == {}
    counters = open_store(f"sqlite:///{result.state}").read(run.task)
    cert, look = counters[K.cert_probes(MINI)], counters.get(K.look_probes(MINI), 0.0)
    assert cert > 150, cert  # certifying took many probes ...
    assert look >= cert - 3 * 32, (look, cert)  # ... nearly all of them in the looks' sample
    assert counters[K.routed(MINI)] > 400  # and a look passed
