"""`smart run` with a learned cascade: the run's first items (drawn before any call) train its
scorer, the fit is claimed once, and the rest of the run is the batch it certifies, with the
frozen cascade as one of its routes. Resumable at every step; the money is all counted."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from interrupt import Interrupt  # this folder is on sys.path

from smart_core import Answer, ConfigError, SmartError, Usage, open_store
from smart_core.jobs.batch_run import BatchRun, load_items, run_batch
from smart_core.jobs.run_training import training_stage
from smart_core.policy import keys as K
from smart_core.reporting.report import report_task
from smart_core.task.cascades import Cascade, CascadeStep

pytest.importorskip("sklearn")

REF, MINI = "openai:gpt-4o", "openai:gpt-4o-mini"
FROZEN = f"cascade:{MINI}[learned@"
TRAIN = 60


def _items(tmp_path: Path, n: int) -> Path:
    """Items a third of which say they are tricky: there the cheap model errs."""
    path = tmp_path / "items.jsonl"
    with path.open("w") as fh:
        for i in range(n):
            kind = "tricky" if i % 3 == 0 else "plain"
            fh.write(json.dumps({"id": f"q{i}", "text": f"question {i}, a {kind} one"}) + "\n")
    return path


def _right(text: str) -> str:
    return "ab"[sum(map(ord, text)) % 2]


class Models:
    """The reference answers every item right; the cheap model errs exactly on the tricky
    ones. Counts the calls that answered per (item, model); ``fail`` makes calls raise."""

    def __init__(self) -> None:
        self.answered: Counter[tuple[str, str]] = Counter()
        self.fail: set[tuple[str, str]] = set()
        self.hook = None

    def endpoint(self, model: str):
        async def call(prompt: str) -> Answer:
            item = "q" + re.search(r"question (\d+)", prompt).group(1)
            if self.hook:
                await self.hook(item, model)
            await asyncio.sleep(0)
            if (item, model) in self.fail:
                raise RuntimeError(f"{model} down")
            right = _right(prompt)
            wrong = "b" if right == "a" else "a"
            text = wrong if model == MINI and "tricky" in prompt else right
            self.answered[(item, model)] += 1
            return Answer(text=text, usage=Usage(200, 1))

        return call

    def endpoints(self):
        return {m: self.endpoint(m) for m in (REF, MINI)}


def _run(path: Path, tmp_path: Path, **kw) -> BatchRun:
    kw.setdefault(
        "cascades",
        [{"steps": [{"model": MINI, "scorer": f"learned:train={TRAIN}", "threshold": 0.8}]}],
    )
    return BatchRun(
        input=path,
        prompt="Answer {text}",
        reference=REF,
        candidates=[MINI],
        epsilon=0.1,
        output=tmp_path / "out.jsonl",
        comparator="choice:a,b",
        concurrency=8,
        prices={REF: [2.5, 10.0], MINI: [0.15, 0.6]},
        **kw,
    )


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _stage_ids(run: BatchRun) -> tuple[str, ...]:
    items = load_items(run.input)
    key = run.key(items)
    stage = training_stage(run.config(len(items), run.store_task(key)), items, key, run.seed)
    assert stage is not None
    return stage.item_ids


def _counters(tmp_path: Path) -> dict[str, float]:
    store = open_store(f"sqlite:///{tmp_path / 'out.jsonl.smart.db'}")
    try:
        return store.read("run")
    finally:
        store.close()


def test_a_run_trains_its_learned_cascade_first_then_serves_it_frozen(tmp_path):
    n = 600
    path = _items(tmp_path, n)
    models = Models()
    run = _run(path, tmp_path)
    result = asyncio.run(run_batch(run, models.endpoints()))
    lines = {x["id"]: x for x in _lines(tmp_path / "out.jsonl")}
    assert result.done == n and result.failed == {}

    # The training stage: the items drawn before any call, answered by the reference, the
    # cheap model called beside each; nothing else trained.
    trained = {i for i, x in lines.items() if x.get("training")}
    assert trained == set(_stage_ids(run)) and len(trained) == TRAIN
    for i in trained:
        assert lines[i]["route"] == REF and lines[i]["probe"]
        assert models.answered[(i, REF)] == 1 and models.answered[(i, MINI)] == 1
    assert max(models.answered.values()) == 1  # nothing paid twice

    # The rest is the batch, certified with the frozen cascade among its routes.
    served = [x for i, x in lines.items() if i not in trained]
    frozen = [x for x in served if x["route"].startswith(FROZEN)]
    assert len(frozen) > 200, Counter(x["route"] for x in served)
    for x in frozen:
        assert x["certificate"]["batch_size"] == n - TRAIN
        assert x["certificate"]["budget"] == pytest.approx(0.1 * (n - TRAIN))
    # The scorer read each request's text: the tricky ones it took went to the reference.
    tricky = [x for x in frozen if int(x["id"][1:]) % 3 == 0]
    assert tricky and all(x["certificate"]["step"] == "ref" for x in tricky)
    accepted = [x for x in frozen if x["certificate"]["step"] != "ref"]
    assert len(accepted) > 100
    texts = {it.id: it.fields["text"] for it in load_items(path)}
    differing = sum(x["answer"] != _right(f"Answer {texts[i]}") for i, x in lines.items())
    assert differing <= 0.1 * (n - TRAIN)

    # Counted: the training items apart from the batch's requests, all of the money.
    counters = _counters(tmp_path)
    assert counters[K.TRAINED] == TRAIN and counters[K.REQUESTS] == n - TRAIN
    ledger = result.ledger
    assert ledger.requests == n and ledger.trained == TRAIN
    assert ledger.batch_size == n - TRAIN
    assert ledger.spent == pytest.approx(sum(x["cost"] for x in lines.values()))
    assert sum(ledger.routed.values()) == n
    assert "60 trained the learned scorers" in ledger.summary()
    assert f"of the batch's {n:,} answers" in ledger.guarantee()

    # `smart report` reads the frozen cascade back from the store.
    store = open_store(f"sqlite:///{tmp_path / 'out.jsonl.smart.db'}")
    try:
        report = report_task(store, "run")
    finally:
        store.close()
    assert report.requests == n
    assert any(r.startswith(FROZEN) for r in report.ledger.routes)


def test_a_run_killed_while_training_resumes_on_the_same_items_and_fits_once(tmp_path):
    path = _items(tmp_path, 300)
    models = Models()
    run = _run(path, tmp_path)
    calls = 0
    cut = Interrupt()

    async def stop_midway(item, model):
        nonlocal calls
        calls += 1
        if calls == 50:  # within the training stage: 60 items of two calls each
            cut.stop()

    models.hook = stop_midway
    cut.run(lambda: run_batch(run, models.endpoints()))
    first = _lines(tmp_path / "out.jsonl")
    assert 0 < len(first) < TRAIN and all(x["training"] for x in first)
    assert K.TRAINED in _counters(tmp_path)
    assert not any(k.startswith(K.LEARNED_FREEZE) for k in _counters(tmp_path))
    # `smart report` reads a run stopped in its training stage: no learned route yet
    store = open_store(f"sqlite:///{tmp_path / 'out.jsonl.smart.db'}")
    try:
        report = report_task(store, "run")
    finally:
        store.close()
    assert report.ledger is not None and report.ledger.trained == len(first)
    assert not any(r.startswith(FROZEN) for r in report.ledger.routes)

    models.hook = None
    result = asyncio.run(run_batch(run, models.endpoints()))
    lines = _lines(tmp_path / "out.jsonl")
    assert result.done == 300 and result.resumed == len(first)
    assert {x["id"] for x in lines if x.get("training")} == set(_stage_ids(run))
    assert max(models.answered.values()) == 1
    counters = _counters(tmp_path)
    assert counters[K.TRAINED] == TRAIN
    assert [k for k in counters if k.startswith(K.LEARNED_FREEZE)]
    # A third start finds every item done and the fit claimed: nothing is called or refit.
    before = Counter(models.answered)
    again = asyncio.run(run_batch(run, models.endpoints()))
    assert again.answered_now == 0 and models.answered == before
    assert _counters(tmp_path) == counters


def test_a_training_item_that_keeps_failing_stops_the_run_before_its_batch(tmp_path):
    path = _items(tmp_path, 200)
    models = Models()
    run = _run(path, tmp_path, item_attempts=2)
    stuck = _stage_ids(run)[7]
    models.fail = {(stuck, MINI)}
    with pytest.raises(SmartError, match="training stage did not finish") as err:
        asyncio.run(run_batch(run, models.endpoints()))
    assert stuck in str(err.value) and "run the same command again" in str(err.value).lower()
    trained = set(_stage_ids(run))
    assert {i for i, _ in models.answered} <= trained  # no item of the batch was called
    assert models.answered[(stuck, REF)] == 1  # kept, not asked again on the retries

    models.fail = set()
    result = asyncio.run(run_batch(run, models.endpoints()))
    assert result.done == 200 and result.failed == {}
    assert max(models.answered.values()) == 1


def test_a_run_too_small_for_its_training_stage_is_refused_before_any_call(tmp_path):
    path = _items(tmp_path, TRAIN)
    models = Models()
    with pytest.raises(ConfigError, match="learned:train=N"):
        asyncio.run(run_batch(_run(path, tmp_path), models.endpoints()))
    assert not models.answered


def test_scorers_that_read_the_request_get_the_prompt_in_a_run(tmp_path):
    path = _items(tmp_path, 120)
    seen: list[str] = []

    def plain_only(request, answer) -> float:
        seen.append(request)
        return 0.0 if "tricky" in request else 1.0

    cascade = Cascade([CascadeStep(MINI, plain_only)], name="plain-only")
    result = asyncio.run(run_batch(_run(path, tmp_path, cascades=[cascade]), Models().endpoints()))
    assert result.done == 120
    assert seen and all(isinstance(r, str) and r.startswith("Answer question") for r in seen)
