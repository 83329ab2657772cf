"""The learned scorer: features of (request, answer), a deterministic fit, a freeze whose
fingerprint names the route, persistence that keeps the name, and the refusals that keep a
scorer from being counted on the probes it was trained on."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from smart_core import Answer, SmartConfig
from smart_core.engine.cascade import CascadeRoute
from smart_core.engine.learned_training import TrainingProbe, freeze_cascades, training_size
from smart_core.errors import ConfigError
from smart_core.task.cascades import Cascade, CascadeStep, learned_auto_cascades
from smart_core.task.comparators import parse_comparator
from smart_core.task.learned_scorer import (
    DEFAULT_TRAIN,
    LearnedScorer,
    ProbeExample,
    TrainingOverlapError,
    UntrainedScorer,
    features,
    fit_scorer,
    request_text,
)
from smart_core.task.scorers import parse_scorer

CHOICE = parse_comparator("choice:A,B")


def _examples(n: int, seed: int = 0, start: int = 0) -> list[ProbeExample]:
    """The step's answer differs from the reference's exactly on requests saying 'tricky'."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        tricky = rng.random() < 0.3
        right = rng.choice("AB")
        said = ("B" if right == "A" else "A") if tricky else right
        word = "tricky" if tricky else "simple"
        request = f"question {rng.randrange(10**6)}: a {word} one about item {i}"
        out.append(ProbeExample(f"p{i}", i, request, Answer(said), Answer(right)))
    return out


def test_request_text_is_provider_neutral():
    assert request_text(None) == ""
    assert request_text("hi") == "hi"
    assert request_text([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == (
        "a\nb"
    )
    assert request_text({"input": "logged"}) == "logged"

    class Item:
        input = "from a replay"

    assert request_text(Item()) == "from a replay"


def test_features_read_request_answer_label_length_and_logprob():
    a = Answer("A", logprobs=(-0.5, -0.25))
    b = Answer("B and a longer text")
    x = features(["tricky question", "tricky question"], [a, b], CHOICE)
    assert x.shape[0] == 2
    # Same request, different answers: the request part is equal, the rest is not.
    assert x[0, : 2**12].tolist() == x[1, : 2**12].tolist()
    assert not np.array_equal(x[0, 2**12 :], x[1, 2**12 :])
    log_length, logprob, has_logprob = x[:, -3], x[:, -2], x[:, -1]
    assert log_length[1] > log_length[0]
    assert logprob[0] == pytest.approx(-0.75) and has_logprob.tolist() == [1.0, 0.0]
    label_part = x[:, 2**12 + 2**10 : -3]
    assert not np.array_equal(label_part[0], label_part[1])  # label A vs label B


def test_fit_learns_an_informative_feature_and_is_deterministic():
    train = _examples(300)
    scorer = fit_scorer(train, CHOICE)
    again = fit_scorer(list(reversed(train)), CHOICE)  # order of the list does not matter
    assert scorer.fingerprint == again.fingerprint and scorer.name == again.name
    assert scorer.name.startswith("learned@") and len(scorer.name) == len("learned@") + 10
    fresh = _examples(400, seed=9, start=10_000)
    p = scorer.predict([e.request for e in fresh], [e.answer for e in fresh], CHOICE)
    agreed = np.array([CHOICE(e.answer, e.reference) for e in fresh])
    assert p[agreed].min() > 0.5 > p[~agreed].max()  # separates hard from easy on fresh data
    assert scorer(fresh[0].answer, {}, CHOICE, request=fresh[0].request) == pytest.approx(p[0])
    assert scorer.trained_through == 299 and scorer.train_size == 300


def test_the_fingerprint_changes_with_the_training_set():
    a = fit_scorer(_examples(200), CHOICE)
    b = fit_scorer(_examples(200, seed=1), CHOICE)
    c = fit_scorer(_examples(199), CHOICE)
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
    same_answers_other_ids = [
        ProbeExample("q" + e.probe_id, e.seq, e.request, e.answer, e.reference)
        for e in _examples(200)
    ]
    assert fit_scorer(same_answers_other_ids, CHOICE).fingerprint != a.fingerprint


def test_nothing_to_separate_gives_a_constant_scorer():
    agreeing = [ProbeExample(f"p{i}", i, "q", Answer("A"), Answer("A")) for i in range(18)]
    scorer = fit_scorer(agreeing, CHOICE)
    assert scorer(Answer("B"), {}, CHOICE, request="x") == pytest.approx(19 / 20)
    with pytest.raises(ConfigError, match="no examples"):
        fit_scorer([], CHOICE)
    with pytest.raises(ConfigError, match="share a probe_id"):
        fit_scorer([agreeing[0], agreeing[0]], CHOICE)


def test_the_frozen_model_is_persisted_and_reloaded_under_the_same_name(tmp_path):
    scorer = fit_scorer(_examples(200), CHOICE)
    path = tmp_path / "scorer.json"
    scorer.save(path)
    loaded = parse_scorer(f"learned:{path}")
    assert isinstance(loaded, LearnedScorer) and loaded.fingerprint == scorer.fingerprint
    fresh = _examples(50, seed=3, start=5000)
    args = ([e.request for e in fresh], [e.answer for e in fresh], CHOICE)
    assert np.allclose(loaded.predict(*args), scorer.predict(*args))
    step = CascadeStep("mini", loaded, 0.8)
    assert Cascade([step]).name == f"cascade:mini[{scorer.name}>=0.8]>ref"
    # A file edited after the freeze no longer matches its fingerprint: refused.
    data = json.loads(path.read_text())
    first = next(iter(data["coef"]))
    data["coef"][first] += 1.0
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="changed after the freeze"):
        LearnedScorer.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        parse_scorer(f"learned:{tmp_path / 'missing.json'}")


def test_a_scorer_refuses_to_count_its_training_probes():
    scorer = fit_scorer(_examples(200), CHOICE)
    scorer.check_counts(probe_id="p200", seq=200)  # fresh: fine
    with pytest.raises(TrainingOverlapError, match="'p17' was in this scorer's training set"):
        scorer.check_counts(probe_id="p17")
    with pytest.raises(TrainingOverlapError, match="at or before the training cut"):
        scorer.check_counts(seq=199)


def test_a_cascade_route_refuses_an_untrained_scorer_and_a_trained_probe():
    untrained = Cascade([CascadeStep("mini", "learned:train=50", 0.9)])
    assert untrained.name == "cascade:mini[learned>=0.9]>ref"
    with pytest.raises(ConfigError, match="not trained yet"):
        CascadeRoute(untrained, "ref", CHOICE)
    examples = _examples(60)
    probes = [
        TrainingProbe(e.probe_id, e.request, {"mini": e.answer, "ref": e.reference})
        for e in examples
    ]
    assert training_size([untrained]) == 50
    (frozen,) = freeze_cascades([untrained], probes, "ref", CHOICE)
    scorer = frozen.steps[0].scorer
    assert scorer.trained_ids == {f"p{i}" for i in range(50)}  # the first `train` probes only
    assert frozen.name == f"cascade:mini[{scorer.name}>=0.9]>ref" != untrained.name
    route = CascadeRoute(frozen, "ref", CHOICE)
    answers = {"mini": Answer("A"), "ref": Answer("A")}
    assert isinstance(route.probe_answer(answers, request="a simple one", probe_id="new"), Answer)
    with pytest.raises(TrainingOverlapError):
        route.probe_answer(answers, request="a simple one", probe_id="p3")


def test_a_declared_name_gets_the_fingerprint_appended():
    declared = Cascade([CascadeStep("mini", UntrainedScorer(20))], name="mini-learned")
    probes = [
        TrainingProbe(e.probe_id, e.request, {"mini": e.answer, "ref": e.reference})
        for e in _examples(20)
    ]
    (frozen,) = freeze_cascades([declared], probes, "ref", CHOICE)
    fp = frozen.steps[0].scorer.fingerprint
    assert frozen.name == f"mini-learned@{fp[:10]}"


def test_config_forms():
    assert UntrainedScorer().spec() == "learned" and DEFAULT_TRAIN == 200
    assert parse_scorer("learned:train=30").train == 30
    with pytest.raises(ConfigError, match="train must be a whole number"):
        parse_scorer("learned:train=many")
    with pytest.raises(ConfigError, match=">= 10"):
        UntrainedScorer(3)
    config = SmartConfig(
        epsilon=0.05,
        reference="gpt-4o",
        candidates=["gpt-4o-mini", "claude-haiku-4-5"],
        comparator="choice:A,B",
        cascades="auto+learned",
    )
    names = config.route_names()
    assert "cascade:gpt-4o-mini[learned>=0.9]>ref" in names
    assert [c.name for c in learned_auto_cascades(["m"])] == ["cascade:m[learned>=0.9]>ref"]
    toml_form = [{"steps": [{"model": "gpt-4o-mini", "scorer": "learned:train=100"}]}]
    assert config.replace(cascades=toml_form).cascade_list()[0].steps[0].scorer.train == 100
