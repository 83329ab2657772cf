"""Online train-then-freeze of learned cascades (smart_core.engine.scorer_training).

A router whose config declares a cascade with an untrained learned scorer serves without it
until enough probes know the step's answer and the reference's, fits and freezes the scorer,
and from then on mixes the frozen cascade like any route: under a new name whose counters
start empty, at the share of delta its plan held from the start, with one fit per task however
many processes share the store, and the same fit after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import replace

import pytest

from smart_core import Answer, MemoryStore, SmartConfig, SmartRouter
from smart_core.engine.learned_training import TrainingProbe, fit_steps
from smart_core.engine.scorer_training import (
    ScorerTraining,
    claim_fits,
    stored_config,
    training_plan,
)
from smart_core.errors import ConfigError, StoreError
from smart_core.policy import keys as K
from smart_core.reporting.report import store_report
from smart_core.task.cascades import Cascade, CascadeStep
from smart_core.task.learned_scorer import UntrainedScorer

pytest.importorskip("sklearn")

REF, MINI, NANO = "gpt-4o", "gpt-4o-mini", "gpt-4.1-nano"
TRAIN = 30
DECLARED = f"cascade:{MINI}[learned>=0.8]>ref"
FROZEN_PREFIX = f"cascade:{MINI}[learned@"


def _truth(seed: int, n: int) -> dict[str, tuple[str, bool]]:
    """Requests (their text) with the reference's answer and whether MINI gets it wrong: MINI
    is wrong on the 30 % hard requests, which say 'tricky' in their text."""
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        hard = rng.random() < 0.3
        text = f"s{seed} ticket {i}: {'a tricky' if hard else 'a plain'} request"
        out[text] = (rng.choice("AB"), hard)
    return out


def _endpoints(truth):
    def endpoint(model: str, wrong_on_hard: bool):
        async def call(request):
            right, hard = truth[request]
            said = ("B" if right == "A" else "A") if hard and wrong_on_hard else right
            cost = {REF: 1.0, MINI: 0.02, NANO: 0.01}[model]
            return Answer(said, model=model, cost=cost)

        return call

    return {REF: endpoint(REF, False), MINI: endpoint(MINI, True), NANO: endpoint(NANO, True)}


def _config(**kw) -> SmartConfig:
    settings = {
        "task": "t",
        "epsilon": 0.05,
        "reference": REF,
        "candidates": [MINI],
        "comparator": "choice:A,B",
        "cascades": [Cascade([CascadeStep(MINI, UntrainedScorer(TRAIN), threshold=0.8)])],
    }
    settings.update(kw)
    return SmartConfig(**settings)


def _frozen_names(router: SmartRouter) -> list[str]:
    return [c for c in router.policy("t").candidates if c.startswith(FROZEN_PREFIX)]


def _serve(router: SmartRouter, requests) -> list:
    return [router.run(r, request_id=r) for r in requests]


def test_pending_cascade_is_no_route_but_keeps_its_share_of_delta():
    router = SmartRouter(_config(), _endpoints(_truth(1, 10)), store=MemoryStore(), seed=1)
    policy = router.policy("t")
    assert policy.candidates == (MINI,)
    assert policy.reserved == (DECLARED,)
    # The split is the one the policy built after the freeze makes: two units of delta.
    assert policy.alphas[MINI] == pytest.approx(policy.delta / 2)
    assert DECLARED not in router.routes


def test_router_trains_freezes_and_then_mixes_the_frozen_cascade(tmp_path):
    truth = _truth(2, 400)
    requests = list(truth)
    store = f"sqlite:///{tmp_path / 'state.db'}"
    router = SmartRouter(_config(), _endpoints(truth), store=store, seed=2)
    before = router.policy("t")
    served = []
    freeze_at = None
    for i, r in enumerate(requests):
        served.append(router.run(r, request_id=r))
        if freeze_at is None and _frozen_names(router):
            freeze_at = i + 1
    assert freeze_at is not None, "the learned scorer was never frozen"
    # It froze once TRAIN probes knew MINI's answer, not before, and nothing served it then.
    probes_until = sum(s.probe for s in served[:freeze_at])
    assert probes_until == TRAIN
    assert not any(s.route.startswith("cascade:") for s in served[:freeze_at])
    (frozen,) = _frozen_names(router)
    after = router.policy("t")
    assert after.reserved == ()
    assert after.alphas[frozen] == pytest.approx(before.alphas[MINI])
    assert after.alphas[MINI] == pytest.approx(before.alphas[MINI])
    # Its bound counts only probes decided after the freeze (none of the training probes).
    counters = router.store.read("t")
    probes_after = sum(s.probe for s in served[freeze_at:])
    assert 0 < counters[K.probes_of(frozen)] <= probes_after
    scorer = router.routes[frozen].cascade.steps[0].scorer
    assert scorer.trained_ids == {s.request_id for s in served[:freeze_at] if s.probe}
    # The informative scorer earns its keep: the cascade answers requests once certified.
    assert any(s.route == frozen for s in served[freeze_at:])
    router.close()

    # A restarted process serves the same fit at once, without training again.
    again = SmartRouter(_config(), _endpoints(truth), store=store, seed=3)
    assert _frozen_names(again) == [frozen]
    assert again.routes[frozen].cascade.steps[0].scorer.fingerprint == scorer.fingerprint
    assert stored_config(_config(), again.store, "t").cascade_list()[0].name == frozen
    again.close()
    # smart report reads the frozen cascade back from the store, with what it served.
    (report,) = store_report(store, "t")
    assert report.ledger.routed[frozen] == sum(s.route == frozen for s in served)


def test_two_processes_on_one_store_serve_one_fit(tmp_path):
    """Each fits on its own probes; the first claim wins and the other serves that fit."""
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    truth_a, truth_b = _truth(3, 60), _truth(4, 60)
    a = SmartRouter(_config(), _endpoints(truth_a), store=store, seed=4)
    b = SmartRouter(_config(), _endpoints(truth_b), store=store, seed=5)
    for ra, rb in zip(truth_a, truth_b, strict=True):
        _serve(a, [ra])
        _serve(b, [rb])
    names_a, names_b = _frozen_names(a), _frozen_names(b)
    assert names_a and names_a == names_b
    claimed = [k for k in a.store.read("t") if k.startswith(K.LEARNED_FREEZE)]
    assert len(claimed) == 1
    a.close()
    b.close()


def test_claim_keeps_the_first_fits():
    store = MemoryStore()
    cfg = _config()
    plan = training_plan(cfg.cascade_list())
    first = _fit(cfg, 5)
    second = _fit(cfg, 6)
    assert first[(MINI, TRAIN)].fingerprint != second[(MINI, TRAIN)].fingerprint
    assert claim_fits(store, "t", plan, first)[(MINI, TRAIN)].fingerprint == (
        first[(MINI, TRAIN)].fingerprint
    )
    kept = claim_fits(store, "t", plan, second)
    assert kept[(MINI, TRAIN)].fingerprint == first[(MINI, TRAIN)].fingerprint


def _fit(cfg: SmartConfig, seed: int):
    from smart_core.engine.learned_training import TrainingProbe, fit_steps

    truth = _truth(seed, TRAIN)
    probes = []
    for text, (right, hard) in truth.items():
        said = ("B" if right == "A" else "A") if hard else right
        answers = {REF: Answer(right, model=REF), MINI: Answer(said, model=MINI)}
        probes.append(TrainingProbe(text, text, answers))
    return fit_steps(cfg.cascade_list(), probes, REF, cfg.comparator)


def test_training_calls_the_step_model_on_probes_only_while_pending():
    cfg = _config(candidates=[NANO, MINI])
    store = MemoryStore()
    router = SmartRouter(cfg, _endpoints(_truth(7, 5)), store=store, seed=7)
    training = ScorerTraining(cfg, store)
    ticket = router.begin("t", request_id="x")
    assert ticket.probe  # the first request of a task is a probe
    assert training.probe_models(ticket) == ()  # the request is unknown: nothing to learn from
    assert training.probe_models(replace(ticket, request="hello")) == (MINI,)


def test_delta_weights_follow_the_declared_name_to_the_frozen_one():
    truth = _truth(8, 300)
    cfg = _config(delta_weights={DECLARED: 3.0})
    router = SmartRouter(cfg, _endpoints(truth), store=MemoryStore(), seed=8)
    assert router.policy("t").alphas[MINI] == pytest.approx(router.policy("t").delta / 4)
    _serve(router, list(truth))
    (frozen,) = _frozen_names(router)
    policy = router.policy("t")
    assert policy.alphas[frozen] == pytest.approx(3 * policy.delta / 4)
    assert policy.alphas[MINI] == pytest.approx(policy.delta / 4)


def test_async_serving_trains_too():
    truth = _truth(9, 120)

    async def main():
        router = SmartRouter(_config(), _endpoints(truth), store=MemoryStore(), seed=9)
        router.wait_for_probes = True
        for r in truth:
            await router.arun(r, request_id=r)
        await router.aclose()
        return router

    router = asyncio.run(main())
    assert _frozen_names(router)


def test_batch_mode_refuses_a_learned_cascade_at_start_up():
    with pytest.raises(ConfigError, match="batch mode") as err:
        SmartRouter(_config(batch_size=500), store=MemoryStore())
    assert "learned:PATH.json" in str(err.value)


class _FitsUnwritable(MemoryStore):
    """A store that cannot keep the fits (its metadata write fails, as over an outage)."""

    def set_meta(self, task: str, key: str, value: str) -> None:
        if key.startswith("learned.fits"):
            raise StoreError("store unreachable")
        super().set_meta(task, key, value)


def test_a_freeze_that_cannot_be_stored_leaves_the_cascade_unused(caplog):
    truth = _truth(10, 80)
    router = SmartRouter(_config(), _endpoints(truth), store=_FitsUnwritable(), seed=10)
    with caplog.at_level(logging.WARNING, logger="smart_core"):
        served = _serve(router, list(truth))
    assert len(served) == len(truth)
    assert _frozen_names(router) == []
    assert router.policy("t").reserved == (DECLARED,)
    assert not any(s.route.startswith("cascade:") for s in served)
    assert "training failed" in caplog.text
    # Given up on: later probes no longer call the step model for training.
    assert not any(k.startswith(K.LEARNED_FREEZE) for k in router.store.read("t"))


def test_stored_fits_that_no_longer_load_leave_the_cascade_unused(caplog):
    store = MemoryStore()
    cfg = _config()
    plan = training_plan(cfg.cascade_list())
    claim_fits(store, "t", plan, _fit(cfg, 11))
    (key,) = [k for k in store.read("t") if k.startswith(K.LEARNED_FREEZE)]
    chosen = int(store.read("t")[key])
    store.set_meta("t", f"learned.fits:{plan}:{chosen:012x}", "not json")
    truth = _truth(12, 40)
    router = SmartRouter(cfg, _endpoints(truth), store=store, seed=12)
    with caplog.at_level(logging.WARNING, logger="smart_core"):
        served = _serve(router, list(truth))
    assert len(served) == 40 and _frozen_names(router) == []
    assert router.policy("t").reserved == (DECLARED,)
    assert "not readable" in caplog.text


def test_a_batch_router_serves_a_learned_cascade_whose_fit_a_training_stage_claimed():
    store = MemoryStore()
    config = _config(batch_size=500)
    truth = _truth(4, TRAIN)
    probes = [
        TrainingProbe(text, text, {REF: Answer(right), MINI: Answer("A" if hard else right)})
        for text, (right, hard) in truth.items()
    ]
    declared = config.untrained_cascades()
    fits = fit_steps(declared, probes, REF, config.comparator)
    claimed = claim_fits(store, "t", training_plan(declared), fits)
    assert {k: f.fingerprint for k, f in claimed.items()} == {
        k: f.fingerprint for k, f in fits.items()
    }
    router = SmartRouter(config, store=store)  # no longer refused: its fit is claimed
    assert _frozen_names(router)
    assert router.training.probe_models(router.begin("t", request_id="r1")) == ()
