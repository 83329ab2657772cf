"""`smart run`'s engine on a shared Redis or PostgreSQL store (real servers started for the
module): interrupted mid-run and resumed from the server, every item is answered exactly once and
the counters are exact; runs sharing a server never mix, and a restart clears only its own run."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from interrupt import Interrupt  # this folder is on sys.path
from test_batch_run import HAIKU, MINI, REF, Models, _items, _lines  # this folder is on sys.path

from smart_core import ConfigError, open_store
from smart_core.jobs.batch_run import BatchRun, load_items, run_batch
from smart_core.policy import keys as K
from smart_core.stores import open_run_state
from smart_core.testing.servers import PostgresServer, RedisServer, ServerUnavailable

N = 200


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, RedisServer | PostgresServer | str]]:
    started: dict = {}
    for kind, server in (("redis", RedisServer), ("postgres", PostgresServer)):
        try:
            started[kind] = server().start()
        except (ServerUnavailable, OSError) as exc:
            started[kind] = f"no {kind} server: {exc}"
    yield started
    for server in started.values():
        if not isinstance(server, str):
            server.close()


@pytest.fixture(params=["redis", "postgres"])
def store_url(request: pytest.FixtureRequest, servers) -> str:
    server = servers[request.param]
    if isinstance(server, str):
        pytest.skip(server)
    return server.url


def _run(path: Path, out: Path, store: str, **kw) -> BatchRun:
    return BatchRun(
        input=path,
        prompt="Classify {text}",
        reference=REF,
        candidates=[MINI, HAIKU],
        epsilon=0.1,
        output=out,
        comparator="choice:a,b",
        concurrency=8,
        store=store,
        **kw,
    )


def _counters(run: BatchRun) -> dict[str, float]:
    store = open_store(run.store)
    try:
        return store.read(run.store_task(run.key(load_items(run.input))))
    finally:
        store.close()


def test_interrupted_run_resumes_from_the_server_exactly_once(tmp_path, store_url):
    path = _items(tmp_path, N)
    models = Models(path, {MINI: 0.02, HAIKU: 0.3})
    run = _run(path, tmp_path / "out.jsonl", store_url, seed=7)
    calls = 0
    cut = Interrupt()

    async def stop_midway(item, model):
        nonlocal calls
        calls += 1
        if calls == 150:
            cut.stop()  # the run stops as it would on Ctrl-C, items in flight

    models.hook = stop_midway
    cut.run(lambda: run_batch(run, models.endpoints()))
    first = {x["id"] for x in _lines(run.output)}
    assert 0 < len(first) < N
    before = Counter(models.calls)
    # The local output file is gone (another machine resumes): the server has everything.
    run.output.unlink()
    models.hook = None
    result = asyncio.run(run_batch(run, models.endpoints()))

    lines = _lines(run.output)
    assert [x["id"] for x in lines] == [f"x{i}" for i in range(N)]
    assert result.resumed == len(first) and result.done == N and result.failed == {}
    for (item, model), n in models.calls.items():
        if item in first:
            assert n == before[(item, model)]  # finished items were not asked again
    assert max(models.answered.values()) == 1  # no answer was bought twice
    counters = _counters(run)
    assert counters[K.REQUESTS] == N and result.ledger.requests == N
    assert sum(counters.get(K.routed(r), 0.0) for r in (REF, MINI, HAIKU)) == N
    for model in (MINI, HAIKU):
        assert counters.get(K.probes_open(model), 0.0) == 0.0
    assert [r["seq"] for r in result.timeline] == list(range(1, N + 1))
    assert str(result.state).startswith(store_url.split("://")[0])


def test_runs_on_one_server_never_mix_and_restart_clears_only_its_own(tmp_path, store_url):
    path = _items(tmp_path, 60)
    models = Models(path, {MINI: 0.02, HAIKU: 0.3})
    one = _run(path, tmp_path / "one.jsonl", store_url)
    two = _run(path, tmp_path / "two.jsonl", store_url, seed=1)  # another run: another key
    assert one.store_task(one.key(load_items(path))) != two.store_task(two.key(load_items(path)))
    asyncio.run(run_batch(one, models.endpoints()))
    asyncio.run(run_batch(two, models.endpoints()))
    kept = _counters(one)
    assert kept[K.REQUESTS] == 60 and _counters(two)[K.REQUESTS] == 60

    again = asyncio.run(run_batch(two, models.endpoints(), restart=True))
    assert again.resumed == 0 and again.answered_now == 60
    assert _counters(two)[K.REQUESTS] == 60  # cleared, then counted afresh: not 120
    assert _counters(one) == kept
    key = one.key(load_items(path))
    state = open_run_state(store_url, one.store_task(key))
    try:
        assert len(state.done()) == 60
    finally:
        state.close()
    # Resuming the finished first run answers nothing new.
    assert asyncio.run(run_batch(one, models.endpoints())).answered_now == 0


def test_a_new_run_will_not_erase_another_runs_output(tmp_path, store_url):
    path = _items(tmp_path, 20)
    models = Models(path, {})
    out = tmp_path / "out.jsonl"
    asyncio.run(run_batch(_run(path, out, store_url), models.endpoints()))
    changed = _run(path, out, store_url)
    changed.epsilon = 0.2
    with pytest.raises(ConfigError, match="--restart") as caught:
        asyncio.run(run_batch(changed, models.endpoints()))
    assert "another run" in str(caught.value)
    assert len(_lines(out)) == 20  # untouched
    result = asyncio.run(run_batch(changed, models.endpoints(), restart=True))
    assert result.done == 20 and result.resumed == 0
    assert json.loads(out.read_text().splitlines()[0])["id"] == "x0"


def test_a_learned_cascade_trains_on_the_server_and_a_restart_trains_it_anew(tmp_path, store_url):
    pytest.importorskip("sklearn")
    path = _items(tmp_path, N)
    models = Models(path, {MINI: 0.1, HAIKU: 0.3})
    learned = [{"steps": [{"model": MINI, "scorer": "learned:train=30"}]}]
    run = _run(path, tmp_path / "out.jsonl", store_url, cascades=learned)
    result = asyncio.run(run_batch(run, models.endpoints()))
    assert result.done == N and result.ledger.trained == 30
    counters = _counters(run)
    freeze = {k: v for k, v in counters.items() if k.startswith(K.LEARNED_FREEZE)}
    assert counters[K.TRAINED] == 30 and counters[K.REQUESTS] == N - 30 and len(freeze) == 1
    # A restart discards this run's counters, the claimed fit among them, and trains again on
    # the same items (drawn from the run's key and seed): the same fit is claimed.
    again = asyncio.run(run_batch(run, models.endpoints(), restart=True))
    assert again.done == N and again.answered_now == N
    counters = _counters(run)
    assert counters[K.TRAINED] == 30
    assert {k: v for k, v in counters.items() if k.startswith(K.LEARNED_FREEZE)} == freeze
