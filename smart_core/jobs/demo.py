"""``smart demo``: SMART end to end with no keys, no network and no set-up.

A generated support-ticket triage workload (four labels; each ticket has a difficulty, and hard
tickets mention two topics) is served by the local OpenAI/Anthropic-compatible server
(:mod:`smart_core.testing`) as three *simulated* models at the list prices of three real ones:
``gpt-4o`` (the reference), ``gpt-4o-mini`` and ``claude-haiku-4-5``. The reference answers with
the ticket's label; the cheaper models err more often the harder the ticket. Everything is
deterministic: the same items, the same answers, every run.

The demo then labels every ticket through SMART and prints, and plots, what was paid against the
reference-only cost and the realized share of answers that differed from the reference's against
epsilon. With ``live=True`` the same workload goes to the real providers (keys from the
environment).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["DEMO_MODELS", "DemoItem", "DemoResult", "demo_prompt", "make_workload", "run_demo"]

LABELS = ("billing", "bug", "feature", "account")

#: Simulated models: spec -> (base error rate, extra error rate on the hardest tickets).
DEMO_MODELS: Mapping[str, tuple[float, float]] = {
    "openai:gpt-4o": (0.0, 0.0),
    "openai:gpt-4o-mini": (0.005, 0.09),
    "anthropic:claude-haiku-4-5": (0.02, 0.30),
}
REFERENCE = "openai:gpt-4o"
CANDIDATES = ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")

_PHRASES = {
    "billing": [
        "I was charged twice for my subscription this month",
        "the invoice shows the wrong VAT number",
        "please refund the annual plan I cancelled",
        "my card was declined although it has funds",
        "why did the price go up on my last bill",
    ],
    "bug": [
        "the export button crashes the app",
        "search returns nothing since the last update",
        "the page freezes when I upload a large file",
        "notifications arrive twice on Android",
        "the dashboard shows a 500 error after login",
    ],
    "feature": [
        "could you add a dark mode to the editor",
        "it would help to export reports as PDF",
        "please support single sign-on with Okta",
        "we would love keyboard shortcuts for tagging",
        "an API endpoint for bulk updates would save us hours",
    ],
    "account": [
        "I cannot reset my password",
        "please change the owner of our workspace",
        "how do I delete my account and data",
        "I lost access to my two-factor device",
        "add my colleague as an admin to the team",
    ],
}
_HEDGES = [
    "",
    "Not sure if this is the right place, but ",
    "Following up on my earlier message: ",
    "Hi team, quick one: ",
]
_TICKET = re.compile(r"Ticket ([A-Za-z0-9_-]+):")


@dataclass(frozen=True, slots=True)
class DemoItem:
    """One generated ticket: ``label`` is what the reference answers; ``difficulty`` in [0, 1]."""

    id: str
    text: str
    label: str
    difficulty: float


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def make_workload(n: int = 3000, seed: int = 0) -> list[DemoItem]:
    """``n`` tickets of varied difficulty (hard ones mention a second, distracting topic)."""
    items = []
    for i in range(n):
        label = LABELS[int(_unit(seed, i, "label") * len(LABELS))]
        difficulty = _unit(seed, i, "difficulty") ** 1.5  # more easy tickets than hard ones
        phrases = _PHRASES[label]
        text = phrases[int(_unit(seed, i, "phrase") * len(phrases))]
        hedge = _HEDGES[int(_unit(seed, i, "hedge") * len(_HEDGES))]
        text = hedge + text
        if difficulty > 0.5:
            other = LABELS[(LABELS.index(label) + 1 + int(_unit(seed, i, "o") * 3)) % 4]
            extra = _PHRASES[other][int(_unit(seed, i, "x") * 5)]
            text += f"; also, unrelated, {extra}"
        items.append(DemoItem(f"T{i:05d}", text + ".", label, round(difficulty, 4)))
    return items


def demo_prompt(item: DemoItem | Mapping[str, Any]) -> str:
    """The prompt every model gets for ``item``."""
    fields = asdict(item) if isinstance(item, DemoItem) else item
    return _PROMPT.format(**fields)


_PROMPT = (
    "Classify the support ticket into exactly one of: billing, bug, feature, account. "
    "Answer with the label only.\nTicket {id}: {text}"
)


def simulated_answer(model: str, item: DemoItem) -> str:
    """What simulated ``model`` answers for ``item`` (deterministic)."""
    base, hard = DEMO_MODELS[model]
    p_wrong = base + hard * item.difficulty**2
    if _unit(model, item.id, "err") >= p_wrong:
        return item.label
    others = [lab for lab in LABELS if lab != item.label]
    return others[int(_unit(model, item.id, "which") * len(others))]


def responders(items: Sequence[DemoItem]) -> dict[str, Any]:
    """One responder per simulated model (keyed by the bare model name the server sees)."""
    by_id = {it.id: it for it in items}

    def make(model: str):
        def respond(prompt: Any) -> str:
            text = getattr(prompt, "last_user_text", None) or str(prompt)
            match = _TICKET.search(text)
            if match is None or match.group(1) not in by_id:
                return "other"
            return simulated_answer(model, by_id[match.group(1)])

        return respond

    return {spec.split(":", 1)[1]: make(spec) for spec in DEMO_MODELS}


# -- running --------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What the demo measured (all money in USD)."""

    simulated: bool
    pipeline: str
    items: int
    epsilon: float
    delta: float
    spent: float
    reference_cost: float
    savings: float
    differing: int
    realized_disagreement: float
    routes: dict[str, int]
    probes: int
    seconds: float
    chart: str
    report: str
    summary: str
    server_requests: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_live_keys() -> None:
    """ConfigError naming the missing environment variables for ``--live``."""
    missing = [k for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY") if not os.environ.get(k)]
    if missing:
        raise ConfigError(
            f"--live calls the real providers and needs {' and '.join(missing)} in the "
            "environment (export OPENAI_API_KEY=... ANTHROPIC_API_KEY=...); without --live the "
            "demo runs on simulated models and needs no keys"
        )


def run_demo(
    *,
    items: int = 3000,
    epsilon: float = 0.05,
    delta: float = 0.05,
    out_dir: str | Path = "smart-demo",
    live: bool = False,
    pipeline: str = "auto",
    concurrency: int = 8,
    seed: int = 0,
    progress: Any = None,
) -> DemoResult:
    """Run the demo; writes ``out_dir``/demo.png, demo.json, answers.jsonl and the store."""
    if live:
        check_live_keys()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ignore = out / ".gitignore"
    if not ignore.exists():  # generated files: keep them out of the user's repository
        ignore.write_text("*\n", encoding="utf-8")
    workload = make_workload(items, seed)
    started = time.monotonic()
    server = None
    base_urls: dict[str, str | None] = {"openai": None, "anthropic": None}
    if not live:
        server = _start_server(workload)
        base_urls = {"openai": server.openai_base_url, "anthropic": server.anthropic_base_url}
    try:
        chosen = _choose_pipeline(pipeline)
        settings: dict[str, Any] = {
            "base_urls": base_urls,
            "epsilon": epsilon,
            "delta": delta,
            "concurrency": concurrency,
            "seed": seed,
            "progress": progress,
        }
        if chosen == "engine":
            rows = _run_engine(workload, out, **settings)
        else:
            rows = _run_pipeline(chosen, workload, out, **settings)
        requests = len(server.requests) if server is not None else None
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    return _summarise(
        workload, rows, out, epsilon, delta, live, chosen, time.monotonic() - started, requests
    )


#: Entry-point group through which framework adapters offer the demo a pipeline (the
#: ``smart-llm`` distribution registers ``langchain`` -> ``smart_langchain._demo``), so the
#: engine runs their code without importing any framework itself.
PIPELINE_GROUP = "smart.demo_pipelines"


def _pipelines() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=PIPELINE_GROUP)}


def _choose_pipeline(pipeline: str) -> str:
    """``langchain`` (the LCEL chain registered by :mod:`smart_langchain`) when installed, else
    ``engine`` (``smart run``'s framework-free engine); ``auto`` picks."""
    offered = _pipelines()
    if pipeline not in ("auto", "engine", "langchain", *offered):
        raise ConfigError(
            f"pipeline {pipeline!r}: choose 'auto', 'langchain' (LCEL chain with "
            "SmartChatModel) or 'engine' (the framework-free `smart run` engine)"
        )
    if pipeline == "engine":
        return "engine"
    name = "langchain" if pipeline == "auto" else pipeline
    try:
        offered[name].load()
    except (KeyError, ImportError) as exc:
        if pipeline == "auto":
            return "engine"
        raise ConfigError(
            f"pipeline {name!r} is not installed: pip install 'smart-llm[{name}]' ({exc!r})"
        ) from exc
    return name


def _run_pipeline(
    name: str,
    workload: Sequence[DemoItem],
    out: Path,
    *,
    base_urls: Mapping[str, str | None],
    epsilon: float,
    delta: float,
    concurrency: int,
    seed: int,
    progress: Any,
) -> list[dict[str, Any]]:
    """Label the workload through an adapter's pipeline (rows in input order)."""
    run_chain = _pipelines()[name].load()
    state = out / f"demo-{name}.smart.db"
    for stale in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
        stale.unlink(missing_ok=True)  # every demo starts from nothing, like --restart
    rows = run_chain(
        [{"id": it.id, "text": it.text} for it in workload],
        prompt=_PROMPT,
        reference=REFERENCE,
        candidates=list(CANDIDATES),
        comparator="choice:" + ",".join(LABELS),
        store=f"sqlite:///{state}",
        base_urls=base_urls,
        epsilon=epsilon,
        delta=delta,
        concurrency=concurrency,
        seed=seed,
        progress=progress,
    )
    with (out / "answers.jsonl").open("w", encoding="utf-8") as fh:
        for it, row in zip(workload, rows, strict=True):
            row["id"] = it.id
            fh.write(json.dumps({"id": it.id, "answer": row["answer"], "route": row["route"]}))
            fh.write("\n")
    return rows


def _start_server(workload: Sequence[DemoItem]) -> Any:
    from ..testing import FakeLLMServer

    server = FakeLLMServer(responders(workload))
    server.__enter__()
    return server


def _run_engine(
    workload: Sequence[DemoItem],
    out: Path,
    *,
    base_urls: Mapping[str, str | None],
    epsilon: float,
    delta: float,
    concurrency: int,
    seed: int,
    progress: Any,
) -> list[dict[str, Any]]:
    """Label the workload through ``smart run``'s engine; per-item rows in completion order."""
    import asyncio

    from ..providers.sdk import make_provider
    from .batch_run import BatchRun, run_batch, timeline

    inputs = out / "tickets.jsonl"
    with inputs.open("w", encoding="utf-8") as fh:
        for it in workload:
            fh.write(json.dumps({"id": it.id, "text": it.text}) + "\n")
    run = BatchRun(
        input=inputs,
        prompt=_PROMPT,
        reference=REFERENCE,
        candidates=list(CANDIDATES),
        epsilon=epsilon,
        delta=delta,
        comparator="choice:" + ",".join(LABELS),
        task="demo-triage",
        concurrency=concurrency,
        output=out / "answers.jsonl",
        state=out / "demo.smart.db",
        seed=seed,
    )
    endpoints = {}
    for spec in DEMO_MODELS:
        provider = spec.split(":", 1)[0]
        endpoints[spec] = make_provider(spec, base_url=base_urls[provider], max_tokens=8)

    async def go() -> Any:
        try:
            return await run_batch(run, endpoints, restart=True, progress=progress)
        finally:
            for ep in endpoints.values():
                await ep.aclose()

    asyncio.run(go())
    rows = timeline(run.state_path)
    answers = {}
    with run.output.open(encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            answers[obj["id"]] = obj["answer"]
    by_index = {i: it.id for i, it in enumerate(workload)}
    for r in rows:
        r["id"] = by_index[r["index"]]
        r["answer"] = answers.get(r["id"])
    return rows


def _summarise(
    workload: Sequence[DemoItem],
    rows: list[dict[str, Any]],
    out: Path,
    epsilon: float,
    delta: float,
    live: bool,
    pipeline: str,
    seconds: float,
    requests: int | None,
) -> DemoResult:
    from ..reporting.charts import plot_run, reference_curve

    labels = {it.id: it.label for it in workload}
    differing = 0
    realized = []
    for i, r in enumerate(rows, start=1):
        if not live and (r["answer"] or "").strip().lower() != labels[r["id"]]:
            differing += 1
        realized.append(differing / i)
    spent = sum(r["cost"] for r in rows)
    ref_total = reference_curve(rows)[-1] if rows else 0.0
    routes: dict[str, int] = {}
    for r in rows:
        routes[r["route"]] = routes.get(r["route"], 0) + 1
    probes = sum(1 for r in rows if r["probe"])
    kind = "LIVE models" if live else "SIMULATED models on a local server (no real LLM calls)"
    chart = plot_run(
        rows,
        out / "demo.png",
        epsilon=epsilon,
        title=f"smart demo: {len(rows)} support tickets, {kind}; epsilon={epsilon:g}, "
        f"delta={delta:g}",
        realized=None if live else realized,
        note=None
        if live
        else "Simulated gpt-4o (reference), gpt-4o-mini and claude-haiku-4-5: list prices, "
        "made-up answers that err more on hard tickets.",
    )
    share = differing / len(rows) if rows and not live else float("nan")
    savings = ref_total / spent if spent > 0 else float("inf")
    lines = [
        f"smart demo -- {kind}",
        "  pipeline: "
        + (
            "LangChain LCEL `prompt | SmartChatModel | StrOutputParser()` over ChatOpenAI and "
            "ChatAnthropic"
            if pipeline == "langchain"
            else "the `smart run` engine (framework-free), models over HTTP via the SDKs"
        ),
        f"  {len(rows)} tickets, epsilon={epsilon:g}, delta={delta:g}, reference {REFERENCE}",
        f"  paid ${spent:.4f} vs ${ref_total:.4f} had {REFERENCE} answered everything "
        + (
            f"-> {savings:.2f}x cheaper ({1 - spent / ref_total:.0%} saved)"
            if savings >= 1 and ref_total > 0
            else f"-> {spent / max(ref_total, 1e-12):.2f}x the reference-only cost: too "
            "few items for profiling to pay back"
        ),
        "  answered by: "
        + ", ".join(f"{r} {n} ({n / len(rows):.0%})" for r, n in sorted(routes.items())),
        f"  probes (reference + candidates, to measure agreement): {probes}",
    ]
    if not live:
        verdict = "within" if share <= epsilon else "ABOVE"
        lines.append(
            f"  answers differing from the reference's: {differing} = {share:.2%} "
            f"({verdict} epsilon {epsilon:.0%})"
        )
    lines.append(f"  chart: {chart}")
    result = DemoResult(
        simulated=not live,
        pipeline=pipeline,
        items=len(rows),
        epsilon=epsilon,
        delta=delta,
        spent=spent,
        reference_cost=ref_total,
        savings=savings,
        differing=differing,
        realized_disagreement=share,
        routes=routes,
        probes=probes,
        seconds=seconds,
        chart=str(chart),
        report=str(out / "demo.json"),
        summary="\n".join(lines),
        server_requests=requests,
    )
    (out / "demo.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result
