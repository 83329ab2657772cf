"""`smart run` refuses what would waste a run, stops when the reference is gone, says what changed,
and draws a readable progress bar in an 80-column terminal (against the local fake server)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smart_core.cli import app
from smart_core.testing import Behaviour, FakeLLMServer, Fault

REF, MINI = "openai:gpt-4o", "openai:gpt-4o-mini"
#: A wide console, so that rich does not wrap the messages the tests look for.
WIDE = {"COLUMNS": "400", "NO_COLOR": "1", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}


def _items(path: Path, n: int, changed: dict[str, str] | None = None) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            text = (changed or {}).get(f"t{i}", f"ticket number {i}")
            fh.write(json.dumps({"id": f"t{i}", "text": text}) + "\n")
    return path


def _label(prompt) -> str:
    """Deterministic labels; the candidate agrees with the reference on most items."""
    text = prompt.last_user_text
    return "billing" if sum(map(ord, text)) % 5 else "bug"


def _args(tmp_path: Path, server: FakeLLMServer, *extra: str, prompt: str = "Label: {text}"):
    return [
        "run",
        "--input",
        str(tmp_path / "items.jsonl"),
        "--prompt",
        prompt,
        "--reference",
        REF,
        "--candidates",
        MINI,
        "--epsilon",
        "0.1",
        "--comparator",
        "choice:billing,bug",
        "--output",
        str(tmp_path / "out" / "labels.jsonl"),
        "--openai-base-url",
        server.openai_base_url,
        "--max-retries",
        "0",
        *extra,
    ]


def _flat(text: str) -> str:
    return " ".join(text.split())


# -- issue 15 item 5: an unreachable reference ----------------------------------------------------


@pytest.mark.slow
def test_a_reference_that_keeps_failing_stops_the_run_and_no_savings_are_shown(tmp_path):
    _items(tmp_path / "items.jsonl", 60)
    down = Behaviour(_label, faults=[Fault("server_error")])
    with FakeLLMServer({"gpt-4o": down, "gpt-4o-mini": _label}) as server:
        result = CliRunner().invoke(app, _args(tmp_path, server, "--concurrency", "4"), env=WIDE)
        reference_calls = server.calls("gpt-4o")
    said = _flat(result.output)
    assert result.exit_code == 2, said
    assert "stopped early: the reference openai:gpt-4o failed on 8 items in a row" in said
    assert "--openai-base-url" in said and "HTTP 500" in said
    assert "savings" not in said
    # 8 failing items stop it: about 8 x 3 attempts, far from 60 items x 3 attempts.
    assert reference_calls <= 40


@pytest.mark.slow
def test_items_that_failed_for_good_withhold_the_savings_headline(tmp_path):
    """A few items the reference cannot answer: the run finishes the others, exits 1, and
    shows no savings (its reference-only estimate would count the unanswered items)."""
    _items(tmp_path / "items.jsonl", 30)
    refused = {"t3", "t17"}

    def model(prompt):  # both models fail on these items, whichever is asked first
        if "t" + prompt.last_user_text.rsplit(" ", 1)[1] in refused:
            raise RuntimeError("refused")
        return _label(prompt)

    with FakeLLMServer({"gpt-4o": model, "gpt-4o-mini": model}) as server:
        result = CliRunner().invoke(app, _args(tmp_path, server), env=WIDE)
    said = _flat(result.output)
    assert result.exit_code == 1, said
    assert "2 of 30 items have no answer, so no savings are shown" in said
    assert not re.search(r"savings \d", said)
    assert "2 items could not be answered" in said
    report = json.loads((tmp_path / "out" / "labels.report.json").read_text())
    assert set(report["failed"]) == refused and report["done"] == 28


# -- item 6: prompt templates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ("Classify: {text.upper}", "--prompt: {text.upper} reads an attribute of the field 'text'"),
        ("Classify: {text[0]}", "--prompt: {text[0]} reads an index of the field 'text'"),
        ("Classify: {text!r}", "--prompt: {text!r} converts or formats the field"),
        ("Classify: {text:>40}", "--prompt: {text:>40} converts or formats the field"),
        ("Classify: {}", "--prompt: {} names no item field"),
        ("Classify the ticket", "names no item field, so every item would be sent the same"),
    ],
)
def test_prompts_other_than_plain_field_references_are_refused_before_any_call(
    tmp_path, prompt, says
):
    _items(tmp_path / "items.jsonl", 5)
    with FakeLLMServer({"gpt-4o": _label, "gpt-4o-mini": _label}) as server:
        result = CliRunner().invoke(app, _args(tmp_path, server, prompt=prompt), env=WIDE)
        calls = len(server.requests)
    said = _flat(result.output)
    assert result.exit_code == 2, said
    assert says in said
    assert "{text}" in said.split(says, 1)[1]  # and it says what to write instead
    assert calls == 0


# -- item 7: refusing to resume another run -------------------------------------------------------


def test_refusing_to_resume_names_the_setting_and_the_items_that_changed(tmp_path):
    _items(tmp_path / "items.jsonl", 20)
    with FakeLLMServer({"gpt-4o": _label, "gpt-4o-mini": _label}) as server:
        runner = CliRunner()
        first = runner.invoke(app, _args(tmp_path, server), env=WIDE)
        assert first.exit_code == 0, first.output
        _items(tmp_path / "items.jsonl", 20, changed={"t4": "new text", "t9": "other"})
        again = runner.invoke(app, [*_args(tmp_path, server), "--epsilon", "0.2"], env=WIDE)
    said = _flat(again.output)
    assert again.exit_code == 2, said
    assert "--epsilon was 0.1, now 0.2" in said
    assert "the input file changed: 2 items differ (e.g. 't4')" in said
    assert "--restart" in said
    assert not re.search(r"[0-9a-f]{16}", said)  # no run keys


# -- item 8: an --output folder that cannot be written -------------------------------------------


@pytest.mark.parametrize("option", ["--output", "--report", "--state"])
def test_an_unwritable_folder_is_reported_against_its_option(tmp_path, option):
    _items(tmp_path / "items.jsonl", 5)
    (tmp_path / "taken").write_text("a file where a folder should be\n")
    target = str(tmp_path / "taken" / "x.jsonl")
    with FakeLLMServer({"gpt-4o": _label, "gpt-4o-mini": _label}) as server:
        result = CliRunner().invoke(app, [*_args(tmp_path, server), option, target], env=WIDE)
        calls = len(server.requests)
    said = _flat(result.output)
    assert result.exit_code == 2, said
    assert f"{option} {target}: cannot write in the folder" in said
    assert "is a file, not a folder" in said
    assert "SQLite" not in said
    assert calls == 0


@pytest.mark.parametrize(
    ("candidates", "says"),
    [
        (REF, f"--candidates lists the reference {REF}; remove it from the candidates"),
        (
            f"{MINI},{MINI}",
            f"--candidates lists {MINI} twice; remove the repeat from the candidates",
        ),
    ],
)
def test_a_repeated_model_is_to_be_removed_from_the_candidates(tmp_path, candidates, says):
    _items(tmp_path / "items.jsonl", 5)
    with FakeLLMServer({"gpt-4o": _label, "gpt-4o-mini": _label}) as server:
        args = [*_args(tmp_path, server), "--candidates", candidates]
        result = CliRunner().invoke(app, args, env=WIDE)
    assert result.exit_code == 2 and says in _flat(result.output), result.output
    assert not (tmp_path / "out").exists()  # refused before anything was written


# -- item 9: the terminal at 80 columns -----------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.mark.slow
def test_the_progress_bar_is_readable_at_80_columns_and_ends_with_the_runs_routes(tmp_path):
    """Through a real process whose stderr rich treats as an 80-column terminal."""
    _items(tmp_path / "items.jsonl", 80)
    with FakeLLMServer({"gpt-4o": _label, "gpt-4o-mini": _label}) as server:
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
        env.update(COLUMNS="80", TTY_COMPATIBLE="1", TTY_INTERACTIVE="1", NO_COLOR="1")
        cmd = [sys.executable, "-c", "from smart_core.cli import main; main()"]
        done = subprocess.run(
            [*cmd, *_args(tmp_path, server, "--epsilon", "0.2")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    screen = [_ANSI.sub("", line).rstrip() for line in re.split(r"[\r\n]", done.stderr)]
    bars = [i for i, line in enumerate(screen) if "80/80" in line]
    assert bars, done.stderr
    last = screen[bars[-1]]
    assert max(len(line) for line in screen) <= 80
    assert sum(ch in "━╸╺" for ch in last) >= 25, last  # was 7 characters wide
    assert "$" in last and "paid" in last
    report = json.loads((tmp_path / "out" / "labels.report.json").read_text())
    routed = {name.split(":", 1)[1]: n / 80 for name, n in report["routes"].items()}
    status = next(line for line in screen[bars[-1] + 1 :] if line.strip())
    assert status.startswith("routed: "), status
    for name, share in routed.items():  # the run's routes, not the mix left for no items
        assert f"{name} {share:.0%}" in status


@pytest.mark.parametrize("command", ["run", "demo"])
def test_help_paragraphs_wrap_at_the_terminal_not_the_source(command):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0
    head = result.output.split("Options")[0].splitlines()
    text = [line.strip(" │") for line in head if "Usage:" not in line]
    paragraphs = "\n".join(text).strip().split("\n\n")
    assert len(paragraphs) >= 2
    for paragraph in paragraphs:
        lines = paragraph.splitlines()
        for line in lines[:-1]:  # a line cut short mid-paragraph is a line break from the source
            assert len(line) > 60, f"{line!r} in {paragraph!r}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--store", "memory://"], "a run needs a store that outlives it"),
        (["--store", "mongodb://u:s3cret@h/db"], "a run needs a store that outlives it"),
        (["--store", "redis://:s3cret@h:1/0", "--state", "x.db"], "keep one"),
        (["--store", "sqlite:///a.db", "--state", "b.db"], "both name the SQLite file"),
    ],
)
def test_a_store_a_run_cannot_use_is_refused_before_any_call(tmp_path, extra, message):
    _items(tmp_path / "items.jsonl", 3)
    with FakeLLMServer() as server:
        result = CliRunner().invoke(app, _args(tmp_path, server, *extra), env=WIDE)
        assert not server.requests
    assert result.exit_code != 0 and message in result.output
    assert "s3cret" not in result.output


def test_store_sqlite_is_the_state_file(tmp_path):
    _items(tmp_path / "items.jsonl", 4)
    state = tmp_path / "elsewhere.db"
    with FakeLLMServer() as server:
        result = CliRunner().invoke(
            app, _args(tmp_path, server, "--store", f"sqlite:///{state}", "--json"), env=WIDE
        )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == str(state)
    assert not (tmp_path / "out" / "labels.jsonl.smart.db").exists()
