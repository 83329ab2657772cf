"""Scorers need no training: each reads what the answer (and a second model's) already says,
under the task's own comparator."""

from __future__ import annotations

import pytest

from smart_core import Answer
from smart_core.errors import ConfigError
from smart_core.task.comparators import parse_comparator
from smart_core.task.scorers import (
    AgreementScorer,
    CallableScorer,
    LabelScorer,
    LogprobScorer,
    parse_scorer,
)

CHOICE = parse_comparator("choice:A,B,C,D")


def test_label_scorer_accepts_only_the_labels_the_comparator_reads():
    s = LabelScorer(["A", "C"])
    assert s.name == "label=A|C" and s.spec() == "label:A,C" and s.needs == ()
    assert s(Answer("The answer is (C)."), {}, CHOICE) == 1.0  # extracted, not raw text
    assert s(Answer("B"), {}, CHOICE) == 0.0
    assert s(Answer("no idea"), {}, CHOICE) == 0.0  # unreadable: escalate


def test_agreement_scorer_uses_the_comparator_between_two_models():
    s = AgreementScorer("nano")
    assert s.needs == ("nano",) and s.spec() == "agree:nano"
    assert s(Answer("(B)"), {"nano": Answer("B\n")}, CHOICE) == 1.0
    assert s(Answer("A"), {"nano": Answer("B")}, CHOICE) == 0.0


def test_logprob_scorer_reads_token_logprobs_and_distrusts_their_absence():
    s = LogprobScorer()
    assert s(Answer("A", value={"logprobs": [-0.1, -0.2]}), {}, CHOICE) == pytest.approx(
        0.7408, abs=1e-4
    )
    assert s(Answer("A"), {}, CHOICE) == 0.0


def test_callable_scorer_and_parsing():
    s = parse_scorer(lambda a: len(a.text))
    assert isinstance(s, CallableScorer) and s(Answer("abc"), {}, CHOICE) == 3.0
    assert isinstance(parse_scorer("label:yes"), LabelScorer)
    assert isinstance(parse_scorer("agree:m"), AgreementScorer)
    assert isinstance(parse_scorer("logprob"), LogprobScorer)
    with pytest.raises(ConfigError, match="label:A,B"):
        parse_scorer("confidence")
    with pytest.raises(ConfigError, match="at least one label"):
        LabelScorer([])
