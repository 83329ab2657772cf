from __future__ import annotations

import re
from typing import Any

import pytest

from smart_core.errors import ConfigError
from smart_core.task.answer import Answer
from smart_core.task.comparators import (
    CallableMatch,
    ChoiceMatch,
    Comparator,
    ExactMatch,
    JsonMatch,
    NumberMatch,
    RegexMatch,
    ToolCallMatch,
    normalize_text,
    parse_comparator,
)


def A(text: str | None = None, value: Any = None) -> Answer:
    return Answer(text=text, value=value)


def agree(comparator: Comparator, candidate: str | None, reference: str | None) -> bool:
    return comparator(A(candidate), A(reference))


# -- protocol -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "comparator",
    [
        ExactMatch(),
        ChoiceMatch("A,B,C,D"),
        RegexMatch(r"\d+"),
        NumberMatch(),
        JsonMatch(),
        ToolCallMatch(),
        CallableMatch(lambda c, r: c == r),
    ],
)
def test_builtins_satisfy_protocol(comparator: Comparator) -> None:
    assert isinstance(comparator, Comparator)
    assert isinstance(comparator.name, str) and comparator.name


def test_plain_function_is_not_a_comparator() -> None:
    assert not isinstance(lambda c, r: True, Comparator)


# -- normalisation and ExactMatch -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("  Paris.  ", "paris"),
        ("PARIS!", "paris"),
        ("New   York\n City", "new york city"),
        ("ﬁne", "fine"),  # NFKC ligature
        ("Ｂ", "b"),  # full-width letter
        ("Straße", "strasse"),  # casefold, not lower
        ("3.14", "3.14"),  # only *trailing* punctuation goes
        ("wait...", "wait"),
        (None, ""),
    ],
)
def test_normalize_text(raw: str | None, normal: str) -> None:
    assert normalize_text(raw) == normal


def test_exact_match_ignores_case_space_and_final_period() -> None:
    exact = ExactMatch()
    assert agree(exact, "The capital is Paris.", "the capital is   paris")
    assert not agree(exact, "Paris", "Lyon")
    assert not agree(exact, "3.14", "3.15")


def test_exact_match_empty_answers_never_agree() -> None:
    exact = ExactMatch()
    assert exact.key(A("")) is None
    assert not agree(exact, "", "")
    assert not agree(exact, None, None)
    assert not agree(exact, "", "Paris")
    assert not agree(exact, "Paris", "")


def test_exact_match_uses_string_value_when_text_missing() -> None:
    assert ExactMatch()(A(value="Paris"), A("paris"))


# -- ChoiceMatch ----------------------------------------------------------------------------------

ABCD = ChoiceMatch(["A", "B", "C", "D"])


@pytest.mark.parametrize(
    ("text", "label"),
    [
        # routerbench-style raw completions
        ("B\n", "B"),
        (" A", "A"),
        ("A.", "A"),
        ("The correct answer is B", "B"),
        ("The answer is (C).", "C"),
        ("Answer: d", "D"),
        ("answer: d", "D"),
        ("Answer:\n\nC", "C"),
        ("The final answer is: b.", "B"),
        ("**B**", "B"),
        ("(c) because the others are wrong", "C"),
        ("b) 42", "B"),
        ("'D'", "D"),
        ("I think a good pick is C", "C"),  # exact-case label beats the article "a"
        ("Among the options, D", "D"),
        ("Answer is A", "A"),
        # a marker with a label in its listed case beats one followed by the article "a"
        ("The answer is a tricky one. Final answer: C", "C"),
    ],
)
def test_choice_extraction(text: str, label: str) -> None:
    assert ABCD.key(A(text)) == label


@pytest.mark.parametrize("text", ["", "none of these", "Answer", "ABC", "E", "Banana"])
def test_choice_extraction_fails_without_a_whole_token_label(text: str) -> None:
    assert ABCD.key(A(text)) is None


def test_choice_agreement_across_formats() -> None:
    assert agree(ABCD, "B\n", "The correct answer is B")
    assert agree(ABCD, " A", "A.")
    assert not agree(ABCD, "B", "C")


def test_choice_candidate_without_label_disagrees() -> None:
    assert not agree(ABCD, "I am not sure", "B")
    assert not agree(ABCD, "B", "I am not sure")


def test_choice_two_unreadable_answers_agree_only_if_same_text() -> None:
    assert agree(ABCD, "I don't know.", "i don't know")
    assert not agree(ABCD, "I don't know", "No idea")


def test_choice_word_labels() -> None:
    sentiment = ChoiceMatch(["positive", "negative", "neutral"])
    assert sentiment.key(A("Positive")) == "positive"
    assert sentiment.key(A("The sentiment is NEGATIVE.")) == "negative"
    assert sentiment.key(A("Sentiment: neutral")) == "neutral"
    assert sentiment.key(A("It is positively great")) is None  # not a whole token
    spam = ChoiceMatch(["spam", "not spam"])
    assert spam.key(A("This is not spam")) == "not spam"  # longest label at the same spot
    assert spam.key(A("spam")) == "spam"


def test_choice_value_wins() -> None:
    assert ABCD.key(A("The answer is C", value="b")) == "B"


def test_choice_label_validation() -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        ChoiceMatch([])
    with pytest.raises(ConfigError, match="non-empty"):
        ChoiceMatch(["A", ""])
    with pytest.raises(ConfigError, match=r"'a'|'A'"):
        ChoiceMatch(["A", "a"])


def test_choice_labels_with_regex_metacharacters() -> None:
    c = ChoiceMatch(["C++", "C#", "C"])
    assert c.key(A("I'd use C# here")) == "C#"
    assert c.key(A("C++")) == "C++"


# -- RegexMatch -----------------------------------------------------------------------------------


def test_regex_first_group_normalised() -> None:
    rx = RegexMatch(r"(?i)final answer:\s*(.+)")
    assert rx.key(A("blah\nFinal answer:  Paris.")) == "paris"
    assert agree(rx, "Final answer: PARIS", "final answer: paris.")
    assert not agree(rx, "Final answer: Lyon", "final answer: paris")


def test_regex_whole_match_without_groups() -> None:
    rx = RegexMatch(r"\d{4}-\d{2}-\d{2}")
    assert rx.key(A("on 2024-08-06 or so")) == "2024-08-06"


def test_regex_first_participating_group() -> None:
    rx = RegexMatch(r"answer is (\w+)|answer: (\w+)")
    assert rx.key(A("answer: yes")) == "yes"


def test_regex_no_match_on_candidate_disagrees() -> None:
    rx = RegexMatch(r"answer: (\w+)")
    assert rx.key(A("nothing here")) is None
    assert not agree(rx, "nothing here", "answer: yes")


def test_regex_accepts_compiled_pattern() -> None:
    rx = RegexMatch(re.compile(r"ANSWER: (\w+)", re.IGNORECASE))
    assert rx.key(A("answer: ok")) == "ok"


def test_invalid_regex_names_pattern() -> None:
    with pytest.raises(ConfigError, match=re.escape("'(unclosed'")):
        RegexMatch("(unclosed")


# -- NumberMatch ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("-3.5", -3.5),
        ("The total is 1,234.", 1234.0),
        ("1,234,567.89", 1234567.89),
        ("1e-3", 0.001),
        ("2.5E+2", 250.0),
        ("It costs $12", 12.0),
        ("a loss of -$12", -12.0),
        ("x = \u22127", -7.0),  # Unicode minus
        ("Step 1: 3 apples. Step 2: 4 pears. So 7", 7.0),  # last number wins
        ("answer: .5", 0.5),
        ("12,3456", 3456.0),  # not a thousands separator
        ("-0", 0.0),
    ],
)
def test_number_extraction(text: str, number: float) -> None:
    assert NumberMatch().key(A(text)) == pytest.approx(number)


def test_number_extraction_failure() -> None:
    assert NumberMatch().key(A("no digits here")) is None
    assert not agree(NumberMatch(), "no idea", "42")


def test_number_exact_and_tolerances() -> None:
    assert agree(NumberMatch(), "The answer is 1,000", "1000.0")
    assert not agree(NumberMatch(), "1000.5", "1000")
    assert agree(NumberMatch(0.5), "1000.5", "1000")
    assert not agree(NumberMatch(0.4), "1000.5", "1000")
    assert agree(NumberMatch(0.01, relative=True), "101", "100")
    assert not agree(NumberMatch(0.01, relative=True), "102", "100")
    assert not agree(NumberMatch(0.01, relative=True), "0.02", "0.01")


def test_number_uses_numeric_value() -> None:
    assert NumberMatch()(A("nonsense", value=3), A("3.0"))
    assert NumberMatch().key(A("7", value=True)) == 7.0  # bools are not numbers


@pytest.mark.parametrize("tolerance", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_number_rejects_bad_tolerance(tolerance: Any) -> None:
    with pytest.raises(ConfigError, match="tolerance"):
        NumberMatch(tolerance)


# -- JsonMatch ------------------------------------------------------------------------------------


def test_json_canonical_comparison() -> None:
    j = JsonMatch()
    assert agree(j, '{"a": 1, "b": [1, 2.0]}', '{"b":[1.0,2],"a":1.0}')
    assert not agree(j, '{"a": 1}', '{"a": 2}')
    assert not agree(j, "[1, 2]", "[2, 1]")  # list order matters
    assert not agree(j, '{"a": true}', '{"a": 1}')  # true is not 1


def test_json_from_fenced_block_and_embedded_span() -> None:
    j = JsonMatch()
    fenced = 'Sure!\n```json\n{"name": "Ada", "age": 36}\n```\nAnything else?'
    embedded = 'The record is {"age": 36.0, "name": "Ada"} as requested.'
    assert j.key(A(fenced)) == j.key(A(embedded)) == '{"age":36,"name":"Ada"}'
    assert j.key(A('list: [1, {"x": 2}] done')) == '[1,{"x":2}]'
    assert j.key(A('we tried {not json} then {"ok": 1}')) == '{"ok":1}'


def test_json_uses_structured_value() -> None:
    j = JsonMatch()
    assert j(A("garbage", value={"b": 2, "a": 1}), A('{"a": 1, "b": 2}'))


def test_json_unparseable_candidate_disagrees() -> None:
    j = JsonMatch()
    assert j.key(A("no json here")) is None
    assert not agree(j, "no json here", '{"a": 1}')


# -- ToolCallMatch --------------------------------------------------------------------------------


def calls(*pairs: tuple[str, Any], key: str = "args") -> list[dict[str, Any]]:
    return [{"name": name, key: args} for name, args in pairs]


def test_tool_calls_equal_as_multisets_with_canonical_args() -> None:
    t = ToolCallMatch()
    a = A(value=calls(("search", {"q": "x", "n": 1}), ("fetch", {"url": "u"})))
    b = A(
        value=calls(("fetch", '{"url": "u"}'), ("search", '{"n": 1.0, "q": "x"}'), key="arguments")
    )
    assert t(a, b)


def test_tool_call_multiplicity_matters() -> None:
    t = ToolCallMatch()
    once = A(value=calls(("ping", {})))
    twice = A(value=calls(("ping", {}), ("ping", {})))
    assert not t(once, twice)


def test_tool_calls_different_args_or_names_disagree() -> None:
    t = ToolCallMatch()
    assert not t(A(value=calls(("search", {"q": "x"}))), A(value=calls(("search", {"q": "y"}))))
    assert not t(A(value=calls(("search", {"q": "x"}))), A(value=calls(("find", {"q": "x"}))))


def test_openai_shaped_tool_calls() -> None:
    t = ToolCallMatch()
    openai = A(
        value=[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]
    )
    assert t(openai, A(value=calls(("f", {"a": 1}))))


def test_missing_args_equal_empty_args() -> None:
    t = ToolCallMatch()
    assert t(A(value=[{"name": "now"}]), A(value=[{"name": "now", "arguments": ""}]))


def test_tool_calls_vs_no_tool_calls_disagree() -> None:
    t = ToolCallMatch()
    with_calls = A("search", value=calls(("search", {})))
    assert not t(with_calls, A("search"))
    assert not t(A("search"), with_calls)


def test_no_tool_calls_falls_back_to_exact_text() -> None:
    t = ToolCallMatch()
    assert t(A("Done.", value=[]), A("done"))
    assert not t(A("Done."), A("Not done"))


def test_malformed_tool_call_candidate_disagrees() -> None:
    t = ToolCallMatch()
    assert t.key(A(value=[{"args": {}}])) is None
    assert not t(A(value=[{"args": {}}]), A(value=calls(("f", {}))))


def test_unparseable_string_args_equal_only_to_same_string() -> None:
    t = ToolCallMatch()
    assert t(A(value=calls(("f", "{oops"))), A(value=calls(("f", "{oops"))))
    assert not t(A(value=calls(("f", "{oops"))), A(value=calls(("f", "{oops2"))))


# -- CallableMatch --------------------------------------------------------------------------------


def test_callable_receives_texts_by_default() -> None:
    seen: list[tuple[Any, Any]] = []

    def same_length(c: str, r: str) -> bool:
        seen.append((c, r))
        return len(c) == len(r)

    cm = CallableMatch(same_length)
    assert cm.name == "same_length"
    assert cm(A("abc"), A("xyz"))
    assert not cm(A("abc"), A(None))
    assert seen == [("abc", "xyz"), ("abc", "")]


def test_callable_receives_answers_when_annotated() -> None:
    def by_value(candidate: Answer, reference: Answer) -> bool:
        return candidate.value == reference.value

    cm = CallableMatch(by_value)
    assert cm.answers
    assert cm(A("x", value=1), A("y", value=1))
    assert not cm(A("x", value=1), A("x", value=2))


def test_callable_answers_flag_and_name_override() -> None:
    cm = CallableMatch(lambda c, r: c.model == r.model, name="same-model", answers=True)
    assert cm.name == "same-model"
    assert cm(Answer("a", model="m"), Answer("b", model="m"))


def test_callable_result_is_bool_and_errors_propagate() -> None:
    assert CallableMatch(lambda c, r: 1)(A("a"), A("b")) is True

    def broken(c: str, r: str) -> bool:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        CallableMatch(broken)(A("a"), A("b"))


def test_callable_rejects_non_callables() -> None:
    with pytest.raises(ConfigError, match="function"):
        CallableMatch(42)  # type: ignore[arg-type]


# -- parse_comparator -----------------------------------------------------------------------------


def test_parse_simple_specs() -> None:
    assert parse_comparator("exact") == ExactMatch()
    assert parse_comparator(" JSON ") == JsonMatch()
    assert parse_comparator("tool_calls") == ToolCallMatch()
    assert parse_comparator("tool-calls") == ToolCallMatch()
    assert parse_comparator("number") == NumberMatch()


def test_parse_parametrised_specs() -> None:
    choice = parse_comparator("choice:A, B,C,D")
    assert isinstance(choice, ChoiceMatch)
    assert choice.labels == ("A", "B", "C", "D")
    assert parse_comparator("number:0.01") == NumberMatch(0.01)
    assert parse_comparator("number:2%") == NumberMatch(0.02, relative=True)
    rx = parse_comparator(r"regex:answer:\s*(\w+)")  # colons after the first belong to the pattern
    assert isinstance(rx, RegexMatch)
    assert rx.pattern == r"answer:\s*(\w+)"
    assert rx.key(A("answer: Yes")) == "yes"


def test_names_round_trip() -> None:
    for spec in [
        "exact",
        "choice:A,B",
        "regex:x(\\d)",
        "number",
        "number:0.5",
        "json",
        "tool_calls",
    ]:
        assert parse_comparator(parse_comparator(spec).name) == parse_comparator(spec)
    relative = NumberMatch(0.02, relative=True)
    assert parse_comparator(relative.name) == relative


def test_parse_passes_comparators_through_and_wraps_callables() -> None:
    exact = ExactMatch()
    assert parse_comparator(exact) is exact
    custom = CallableMatch(lambda c, r: True)
    assert parse_comparator(custom) is custom

    def loose(c: str, r: str) -> bool:
        return c[:1] == r[:1]

    wrapped = parse_comparator(loose)
    assert isinstance(wrapped, CallableMatch)
    assert wrapped(A("apple"), A("avocado"))


@pytest.mark.parametrize("spec", ["fuzzy", "exact:1", "choice", "regex", ""])
def test_parse_unknown_specs_list_valid_forms(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_comparator(spec)
    message = str(info.value)
    assert repr(spec) in message
    assert "choice:A,B,C,D" in message and "regex:PATTERN" in message and "tool_calls" in message


def test_parse_bad_number_tolerance_says_how() -> None:
    with pytest.raises(ConfigError, match=r"'abc'.*'number:0\.01'"):
        parse_comparator("number:abc")


@pytest.mark.parametrize("spec", ["choice:", "regex:", "regex:(", "number:-1"])
def test_parse_invalid_arguments(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_comparator(spec)


def test_parse_rejects_non_specs() -> None:
    with pytest.raises(ConfigError, match="comparator must be"):
        parse_comparator(3)  # type: ignore[arg-type]


def test_equality_and_hash() -> None:
    assert ChoiceMatch("A,B") == ChoiceMatch(["A", "B"])
    assert ChoiceMatch("A,B") != ChoiceMatch("A,C")
    assert hash(NumberMatch(0.1)) == hash(NumberMatch(0.1))
    assert ExactMatch() != JsonMatch()
    assert repr(ChoiceMatch("A,B")) == "ChoiceMatch(('A', 'B'))"
