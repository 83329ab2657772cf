"""`smart run` with the answer cache, in-process endpoints: repeats served from the cache within
their tenant (and user) only, never across; a resumed run records every hit once and every paid
answer; bad tenant/user fields refused before any call."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
from interrupt import Interrupt  # this folder is on sys.path

from smart_core import Answer, ConfigError, Usage
from smart_core.jobs.batch_run import BatchRun, run_batch

REF, MINI = "openai:gpt-4o", "openai:gpt-4o-mini"
TENANTS, USERS, QUESTIONS, REPEATS = ("acme", "globex"), ("ann", "bob"), 5, 3
COST = {REF: 0.01, MINI: 0.001}


def _items(tmp_path: Path) -> tuple[Path, dict[str, tuple[str, str, str]]]:
    """Every question asked REPEATS times by each user of each tenant, in a shuffled file."""
    rows = [
        {"tenant": t, "user": u, "text": f"question {q}"}
        for t, u, q, _ in itertools.product(TENANTS, USERS, range(QUESTIONS), range(REPEATS))
    ]
    import random

    random.Random(4).shuffle(rows)
    path = tmp_path / "items.jsonl"
    who: dict[str, tuple[str, str, str]] = {}
    with path.open("w") as fh:
        for i, row in enumerate(rows):
            row["id"] = f"x{i}"
            who[row["id"]] = (row["tenant"], row["user"], row["text"])
            fh.write(json.dumps(row) + "\n")
    return path, who


class Tokens:
    """Endpoints answering each call with a token never given before (so an answer names the
    one call that produced it); the prompt does not name the tenant or user."""

    def __init__(self) -> None:
        self.counter = itertools.count()
        self.calls: Counter[str] = Counter()  # calls started, by model
        self.paid = 0.0  # what the answers returned cost
        self.hook = None

    def endpoints(self):
        def endpoint(model: str):
            async def call(prompt: str) -> Answer:
                self.calls[model] += 1
                if self.hook is not None:
                    await self.hook(model)
                await asyncio.sleep(0)
                self.paid += COST[model]
                return Answer(
                    text=f"{model}#{next(self.counter)}", usage=Usage(50, 1), cost=COST[model]
                )

            return call

        return {REF: endpoint(REF), MINI: endpoint(MINI)}


def _run(path: Path, tmp_path: Path, **kw) -> BatchRun:
    kw.setdefault("cache", "exact")
    kw.setdefault("cache_answers", "per_user")
    kw.setdefault("concurrency", 4)
    return BatchRun(
        input=path,
        prompt="Answer {text}",
        reference=REF,
        candidates=[MINI],
        epsilon=0.1,
        output=tmp_path / "out.jsonl",
        **kw,
    )


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_no_crossing(lines: list[dict], who: dict, per_user: bool) -> int:
    """Each item served from the cache got the reference's answer to an item of the same
    tenant (and user, when per user) asking the same text; returns the number of hits."""
    by_answer = {x["answer"]: x["id"] for x in lines if not x["route"].startswith("cache:")}
    hits = 0
    for x in lines:
        if not x["route"].startswith("cache:"):
            continue
        hits += 1
        assert x["route"] == "cache:exact" and x["cost"] == 0.0
        assert x["answer"].startswith(f"{REF}#")
        source = by_answer[x["answer"]]
        tenant, user, text = who[x["id"]]
        s_tenant, s_user, s_text = who[source]
        assert (s_tenant, s_text) == (tenant, text)
        if per_user:
            assert s_user == user
    return hits


@pytest.mark.parametrize("answers", ["per_user", "shared"])
def test_repeats_are_served_from_the_cache_within_their_namespace_only(tmp_path, answers):
    path, who = _items(tmp_path)
    n = len(who)
    models = Tokens()
    result = asyncio.run(
        run_batch(_run(path, tmp_path, cache_answers=answers, concurrency=1), models.endpoints())
    )
    lines = _lines(tmp_path / "out.jsonl")
    assert [x["id"] for x in lines] == [f"x{i}" for i in range(n)]
    hits = _check_no_crossing(lines, who, per_user=answers == "per_user")
    # One item at a time: every repeat after the reference answered its first is a hit.
    groups = {(t, u, q) if answers == "per_user" else (t, q) for t, u, q in who.values()}
    first_by_reference = n - hits - sum(x["route"] == MINI for x in lines)
    assert hits >= n - len(groups) - sum(x["route"] == MINI for x in lines)
    assert first_by_reference <= len(groups) + sum(x["route"] == MINI for x in lines)
    assert sum(models.calls.values()) < n  # the models saw fewer calls than items
    ledger = result.ledger
    assert ledger.cache_hits == hits == result.routes["cache:exact"]
    assert ledger.cache_hits + ledger.cache_misses == n
    assert ledger.cache_saved > 0
    assert result.to_dict()["cache"]["hits"] == hits
    assert ledger.spent == pytest.approx(models.paid)


def test_a_cancelled_run_resumes_with_every_hit_and_paid_answer_recorded_once(tmp_path):
    path, who = _items(tmp_path)
    n = len(who)
    models = Tokens()
    run = _run(path, tmp_path, concurrency=6)
    cut = Interrupt()

    async def stop_midway(model):
        if sum(models.calls.values()) == 25:
            cut.stop()  # what asyncio.run does on Ctrl-C

    models.hook = stop_midway
    cut.run(lambda: run_batch(run, models.endpoints()))
    first = _lines(tmp_path / "out.jsonl")
    assert 0 < len(first) < n
    models.hook = None
    result = asyncio.run(run_batch(run, models.endpoints()))
    lines = _lines(tmp_path / "out.jsonl")
    assert [x["id"] for x in lines] == [f"x{i}" for i in range(n)]
    assert result.resumed == len(first)
    # Lines written before the interruption are kept as they were.
    assert [x for x in lines if x["id"] in {f["id"] for f in first}] == first
    hits = _check_no_crossing(lines, who, per_user=True)
    ledger = result.ledger
    assert hits > 0
    assert ledger.requests == n
    assert ledger.cache_hits == hits  # each hit recorded once, across the interruption
    assert ledger.cache_hits + ledger.cache_misses == n  # each item looked up once
    # Every answer a model returned is recorded (saved answers are reused, never replaced by
    # a hit that appeared meanwhile), and none is paid for twice.
    assert ledger.spent == pytest.approx(models.paid)


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ({"tenant": ""}, "'tenant' is empty"),
        ({"tenant": 5.5}, "'tenant' must be a string, not float"),
        ({"user": ["ann"]}, "'user' must be a string, not list"),
        ({"user": " ann"}, "'user' has leading or trailing spaces"),
        ({"tenant": True}, "'tenant' must be a string, not bool"),
    ],
)
def test_bad_tenant_or_user_fields_are_refused_before_any_call(tmp_path, row, said):
    path = tmp_path / "items.jsonl"
    good = {"id": "a", "text": "hi", "tenant": "acme", "user": 7}  # an integer id is a name
    path.write_text(json.dumps(good) + "\n" + json.dumps({"id": "b", "text": "yo", **row}) + "\n")
    models = Tokens()
    with pytest.raises(ConfigError) as caught:
        asyncio.run(run_batch(_run(path, tmp_path), models.endpoints()))
    message = str(caught.value)
    assert f"{path}:2" in message and "item 'b'" in message and said in message
    assert sum(models.calls.values()) == 0
    # Without the cache the fields are plain template fields: nothing is checked.
    result = asyncio.run(run_batch(_run(path, tmp_path, cache="off"), models.endpoints()))
    assert result.done == 2


def test_an_answer_paid_before_a_stop_is_recorded_not_replaced_by_a_later_hit(tmp_path):
    """A probed item whose reference answer was paid for, and recorded, but whose probe never
    settled when the run stopped, while its twin finished (its answer is in the cache): resumed,
    it is served by its saved lookup (a miss) and its saved answer, so a hit never overwrites an
    answer already recorded under its id."""
    from smart_core.providers.sdk import ProviderError
    from smart_core.stores import open_run_state, open_store

    path = tmp_path / "items.jsonl"
    with path.open("w") as fh:
        for i in range(80):
            fh.write(json.dumps({"id": f"x{i}", "text": f"question {i // 8}", "user": "ann"}))
            fh.write("\n")
    models = Tokens()
    hung_at: list[int] = []

    async def first_run(model):
        if model == MINI and not hung_at:  # the first probe's candidate never answers
            hung_at.append(models.calls[REF])
            await asyncio.Event().wait()
        if model == REF and hung_at and models.calls[REF] >= hung_at[0] + 8:
            raise ProviderError("bad key", status=401)  # stops the run (fatal)

    models.hook = first_run
    run = _run(path, tmp_path, concurrency=2)
    with pytest.raises(ProviderError):
        asyncio.run(run_batch(run, models.endpoints()))
    store = open_store(f"sqlite:///{tmp_path / 'out.jsonl.smart.db'}")
    state = open_run_state(store, "run")
    done, answers = state.done(), state.answers()
    store.close()
    stuck = [i for i, by in answers.items() if REF in by and i not in done]
    assert stuck, "the stop must leave a paid, unfinished item"
    twins = {i: {f"x{j}" for j in range(80) if j // 8 == int(i[1:]) // 8} - {i} for i in stuck}
    assert any(twins[i] & set(done) for i in stuck), "whose twin finished"
    models.hook = None
    result = asyncio.run(run_batch(run, models.endpoints()))
    lines = {x["id"]: x for x in _lines(tmp_path / "out.jsonl")}
    assert len(lines) == 80
    for item in stuck:
        assert lines[item]["route"] == REF
        assert lines[item]["answer"] == json.loads(answers[item][REF])["text"]
    ledger = result.ledger
    assert ledger.cache_hits == result.routes.get("cache:exact", 0) > 0
    assert ledger.spent == pytest.approx(models.paid)  # every answer returned, recorded once
