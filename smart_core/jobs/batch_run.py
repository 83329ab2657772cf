"""``smart run``: label a file of items through SMART, concurrently, resumably, with a report.

Every item is answered exactly once under the batch guarantee (docs/guarantee.md, step 5;
``batch_size`` = the number of items). By default all state lives in one SQLite file next to the
output (``OUTPUT.smart.db``): the engine's counters (a :class:`~smart_core.SqliteStore`) and the
run's own state (``stores.RunState``) -- each item's routing ticket, every model answer as soon
as it arrives, and each finished item's output line. With ``store`` (``smart run --store``) both
live in a shared Redis or PostgreSQL server instead, under the name ``<task>/<run key>``, so that
runs sharing a server never mix and a run resumes from any machine. The steps of an item are
ordered so that a kill at any point loses nothing and pays for nothing twice:

1. the ticket (the policy's decision) is saved, then reserved in the store under the item's id
   (idempotent), so a resumed item keeps its decision and is counted once;
2. each model answer is saved the moment it returns; on resume, saved answers are reused and only
   the missing calls are made;
3. the answer, the probe outcomes and the output line are recorded (store writes keyed by the
   item's id, so replaying them changes nothing), then the line is appended to the output file.

On start the output file is rebuilt from the finished items (so a line cut by a kill disappears);
at the end it is rewritten in input order. Items are processed in a seeded random order (the
same on every resume), because probes must be an unbiased sample of the batch.

With the answer cache (``cache="exact"`` or ``"semantic"``, docs/cache.md) an item is looked up
once its ticket is drawn, within the namespace of its ``tenant`` and ``user`` fields, and what
the lookup found (a hit, or nothing) is saved with the item's answers before anything else
happens. A resumed item is then served as it would have been: a hit is recorded once (its store
write is keyed by the item's id), and an answer paid for before a kill is the one recorded,
never replaced by a hit that appeared meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..cache import CacheLookup, RequestCache
from ..engine.drivers import AsyncPerformer, Calls, arun_flow
from ..engine.effects import Begin, FallBack, LookUp, Settle, StartProbes
from ..engine.flow import serve_flow
from ..engine.increments import trained
from ..engine.ledger import Ledger
from ..engine.router import Endpoint, SmartRouter, Ticket, record_config
from ..engine.scorer_training import stored_config
from ..errors import SmartError
from ..policy import Policy, policy_for
from ..policy.settled_prefix import SettledPrefix
from ..providers.sdk import PROVIDERS, ProviderError
from ..stores import sqlite_timeline
from ..task.answer import Answer
from ..task.config import SmartConfig
from .batch_input import (
    BatchItem,
    check_prompt,
    item_namespace,
    load_items,
    render_prompt,
)
from .progress_feed import Progress, ProgressFeed
from .run_claim import open_run, start_router
from .run_records import (
    LOOKUP,
    answer_from,
    answer_json,
    lookup_from,
    lookup_json,
    ticket_from,
    ticket_json,
)
from .run_training import training_stage

__all__ = ["BatchItem", "BatchResult", "BatchRun", "load_items", "run_batch"]

#: Items in a row on which the reference failed (after each call's own retries) that stop a run.
REFERENCE_FAILURE_LIMIT = 8


def timeline(db_path: str | Path) -> list[dict[str, Any]]:
    """Finished items of the run in a SQLite state file in completion order (for charts); [] if
    the file has no run. A run on a shared store gives its timeline in ``BatchResult.timeline``."""
    return sqlite_timeline(db_path)


# -- the run --------------------------------------------------------------------------------------


@dataclass
class BatchRun:
    """Everything one ``smart run`` needs; ``key()`` identifies it for resuming."""

    input: Path
    prompt: str
    reference: str
    candidates: list[str]
    epsilon: float
    output: Path
    delta: float = 0.05
    comparator: str = "exact"
    task: str = "run"
    concurrency: int = 32
    method: str = "anytime"
    state: Path | None = None
    prices: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    item_attempts: int = 3
    store: str | None = None
    """A shared store's URL (``redis://...``, ``postgresql://...``) for the counters and the run
    state; None keeps both in the SQLite file ``state_path``."""
    cascades: Any = None
    """``"auto"`` or cascades in their plain form (docs/cascades.md): routes besides the
    candidates; None: none."""
    cache: str = "off"
    """The answer cache (``SmartConfig.cache``): ``off``, ``exact`` or ``semantic``."""
    cache_answers: str = "shared"
    """``shared`` (a tenant's users share answers) or ``per_user`` (``SmartConfig.cache_answers``;
    an item naming no ``user`` then neither reads nor writes the cache)."""
    tenant: str = "default"
    """The tenant of items without a ``tenant`` field."""

    @property
    def state_path(self) -> Path:
        return Path(self.state) if self.state else Path(f"{self.output}.smart.db")

    def store_task(self, key: str) -> str:
        """The task the run's counters and state are kept under: on a shared store, named after
        the run's key, so runs sharing a server never mix (the SQLite file holds one run)."""
        return f"{self.task}/{key}" if self.store else self.task

    def settings(self) -> dict[str, str]:
        """The settings that decide the answers, by the option that sets each (for messages)."""
        return {
            "--prompt": self.prompt,
            "--reference": self.reference,
            "--candidates": ",".join(self.candidates),
            "--epsilon": repr(self.epsilon),
            "--delta": repr(self.delta),
            "--comparator": str(self.comparator),
            "method (in --config)": self.method,
            "--seed": str(self.seed),
            "--price": json.dumps(self.prices, sort_keys=True, default=str),
            **({"--cascades": _dumps(self.cascades)} if self.cascades else {}),
            **({"--cache": self._cache_setting()} if self.cache != "off" else {}),
        }

    def _cache_setting(self) -> str:
        return f"{self.cache} (answers {self.cache_answers}, default tenant {self.tenant!r})"

    def key(self, items: Sequence[BatchItem]) -> str:
        """Hash of everything that decides the answers: the items and the settings."""
        h = hashlib.sha256()
        parts = [
            self.prompt,
            self.reference,
            ",".join(self.candidates),
            repr(self.epsilon),
            repr(self.delta),
            str(self.comparator),
            self.method,
            self.task,
            str(self.seed),
            json.dumps(self.prices, sort_keys=True, default=str),
        ]
        if self.cascades:  # (absent from older runs' keys, which stay as they were)
            parts.append(_dumps(self.cascades))
        if self.cache != "off":  # (likewise: a hit replaces the drawn route's answer)
            parts.append(self._cache_setting())
        for p in parts:
            h.update(p.encode() + b"\0")
        for it in items:
            h.update(json.dumps([it.id, it.fields], sort_keys=True, default=str).encode() + b"\n")
        return h.hexdigest()[:16]

    def config(self, n: int, task: str | None = None) -> SmartConfig:
        return SmartConfig(
            task=task or self.task,
            epsilon=self.epsilon,
            delta=self.delta,
            reference=self.reference,
            candidates=self.candidates,
            comparator=self.comparator,
            method=self.method,  # type: ignore[arg-type]
            store=self.store or f"sqlite:///{self.state_path.absolute()}",
            batch_size=n,
            prices=self.prices,
            cascades=self.cascades,
            cache=self.cache,  # type: ignore[arg-type]
            cache_answers=self.cache_answers,  # type: ignore[arg-type]
            tenant=self.tenant,
        )


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class BatchResult:
    """What a run did: counts, the ledger, file paths, and items that could not be answered."""

    items: int
    done: int
    answered_now: int
    resumed: int
    failed: dict[str, str]
    ledger: Ledger
    routes: dict[str, int]
    output: Path
    state: Path | str
    seconds: float
    timeline: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Finished items in completion order (for the chart); not part of ``to_dict``."""
    cache: str = "off"
    """The run's answer cache (``BatchRun.cache``)."""

    def cache_summary(self) -> dict[str, Any] | None:
        """Items served from the answer cache, items it held nothing for, and what the hits
        saved (USD, the routes the mix had drawn for them); ``None`` without a cache."""
        if self.cache == "off":
            return None
        ledger = self.ledger
        return {
            "mode": self.cache,
            "hits": ledger.cache_hits,
            "misses": ledger.cache_misses,
            "saved": ledger.cache_saved,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "done": self.done,
            "answered_now": self.answered_now,
            "resumed": self.resumed,
            "failed": self.failed,
            "routes": self.routes,
            "output": str(self.output),
            "state": str(self.state),
            "seconds": self.seconds,
            "ledger": self.ledger.to_dict(),
            **({"cache": self.cache_summary()} if self.cache != "off" else {}),
        }


async def run_batch(
    run: BatchRun,
    endpoints: Mapping[str, Endpoint],
    *,
    restart: bool = False,
    progress: Progress | None = None,
    progress_every: float = 0.25,
) -> BatchResult:
    """Answer every item of ``run`` not answered yet; see the module docstring for the steps.
    ``progress`` gets the items done and the ledger at most every ``progress_every`` seconds
    (:class:`~smart_core.jobs.progress_feed.ProgressFeed`)."""
    started = time.monotonic()
    items = load_items(run.input)
    check_prompt(run.prompt, [f for f in items[0].fields if f != "id"])
    prompts = {it.id: render_prompt(run.prompt, it) for it in items}  # fail before any call
    cached = run.cache != "off"  # each item's tenant and user, checked before any call
    namespaces = {it.id: item_namespace(it, run.input) for it in items} if cached else {}
    key = run.key(items)
    task = run.store_task(key)
    config = run.config(len(items), task)
    # Learned scorers to fit: the run's training items answer first (smart_core.jobs.run_training)
    stage = training_stage(config, items, key, run.seed)
    if stage is not None:
        config = stage.batch_config(config)
    store, db = open_run(run, key, items, config, restart)
    state: Path | str = db.where if run.store else run.state_path
    router: SmartRouter | None = None  # started once the learned scorers, if any, are frozen

    def policy_now() -> Policy:
        """The run's policy: the router's once it has started; before (a training stage, or a
        run stopped in it), the batch's as the store has it, with no learned route yet."""
        if router is not None:
            return router.policy(task)
        return policy_for(stored_config(config, store, task), task=task)

    tickets = {item: ticket_from(t) for item, t in db.tickets().items()}
    saved: dict[str, dict[str, Answer]] = {}
    lookups: dict[str, CacheLookup] = {}  # what the answer cache found for each item, as saved
    for item_id, by_model in db.answers().items():
        kept = by_model.pop(LOOKUP, None)
        if kept is not None:
            lookups[item_id] = lookup_from(kept)
        saved[item_id] = {model: answer_from(a) for model, a in by_model.items()}
    done = db.done()
    _rewrite_output(run.output, done.values())
    reference = config.reference.name
    training = set(stage.item_ids) if stage is not None else set()
    order = [it for it in items if it.id not in done and it.id not in training]
    random.Random(f"{key}:{run.seed}").shuffle(order)
    resumed = len(done)
    failed: dict[str, str] = {}
    answered = 0
    out = run.output.open("a", encoding="utf-8")
    sem = asyncio.Semaphore(max(1, run.concurrency))
    lock = asyncio.Lock()  # one decision at a time: each sees the previous reservation
    # Decision order is known here, so the bounds use the probes settled in that order (rather
    # than count every probe in flight as differing); see smart_core.policy.settled_prefix.
    prefix = SettledPrefix()
    probe_seq: dict[str, int] = {}
    # The items on which the reference failed since its last answer, with the last error. Every
    # item may need the reference (on a probe, or as the fallback), so while it is unreachable
    # item after item would fail and the run would end with a handful of answers; once
    # REFERENCE_FAILURE_LIMIT items in a row have failed, the run stops. Items rather than calls,
    # so that a few items the reference refuses, each tried several times, never stop a run.
    reference_streak: dict[str, BaseException] = {}

    async def call(item_id: str, model: str) -> Answer:
        have = saved.get(item_id, {}).get(model)
        if have is not None:
            return have
        try:
            answer = await endpoints[model](prompts[item_id])
        except Exception as exc:
            if model == reference:
                reference_streak[item_id] = exc
            raise
        if model == reference:
            reference_streak.clear()
        answer.model = model
        await db.asave_answer(item_id, model, answer_json(answer))
        saved.setdefault(item_id, {})[model] = answer
        return answer

    async def ticket_for(item_id: str) -> Ticket:
        ticket = tickets.get(item_id)
        if ticket is None:
            async with lock:
                state = prefix.state(await store.aread(task))
                decision = policy_now().decide(state, router.rng)
                ticket = Ticket(item_id, decision, decision.route)
                await db.asave_ticket(item_id, ticket_json(ticket))
                tickets[item_id] = ticket
                await store.aadd(task, decision.increments, event_id=f"{item_id}:decide")
                seq = prefix.decided(decision.increments)
                if seq is not None:
                    probe_seq[item_id] = seq
        else:  # saved before a kill: make sure it is reserved (a no-op if it was)
            await store.aadd(task, ticket.decision.increments, event_id=f"{item_id}:decide")
        return ticket

    def cache_for(item_id: str) -> RequestCache | None:
        """The item's view of the answer cache: its rendered prompt, in its namespace."""
        if router.cache is None:
            return None
        tenant, user = namespaces[item_id]
        prompt = prompts[item_id]
        return router.request_cache(prompt, tenant=tenant, user=user, text=prompt)

    class ItemSteps(AsyncPerformer):
        """The serving flow's steps for one item of this run: its saved ticket, cache lookup
        and answers are reused, a fallback is saved, and its probe is recorded in decision
        order."""

        def __init__(self, item_id: str) -> None:
            def answer(model: str) -> Awaitable[Answer]:
                return call(item_id, model)

            super().__init__(
                router, Calls(answer, answer, cache=cache_for(item_id), request=prompts[item_id])
            )
            self.item_id = item_id
            self.probes: dict[str, asyncio.Future[Answer]] = {}
            self.results: dict[str, Answer | BaseException] = {}

        async def begin(self, e: Begin) -> Ticket:
            # the prompt rides on the ticket for cascade scorers that read the request
            return replace(await ticket_for(self.item_id), request=prompts[self.item_id])

        async def look_up(self, e: LookUp) -> CacheLookup | None:
            if self.calls.cache is None:
                return None
            found = lookups.get(self.item_id)
            if found is None:  # saved before any hit is served or answer recorded
                found = await self.calls.cache.alookup(e.ticket.task)
                await db.asave_answer(self.item_id, LOOKUP, lookup_json(found))
                lookups[self.item_id] = found
            return found

        async def start_probes(self, e: StartProbes) -> Any:
            models = router.routes.models_to_probe(e.ticket.probe_models)
            self.probes = {m: asyncio.ensure_future(call(self.item_id, m)) for m in models}
            return _Cancel(self.probes) if self.probes else None

        async def fall_back(self, e: FallBack) -> Ticket:
            ticket = await router.afall_back(e.ticket, e.error)
            await db.asave_ticket(self.item_id, ticket_json(ticket))
            tickets[self.item_id] = ticket
            return ticket

        async def settle(self, e: Settle) -> None:
            got = await asyncio.gather(*self.probes.values(), return_exceptions=True)
            self.results = dict(zip(self.probes, got, strict=True))
            # the lookup rides on the ticket: a probe hands its nearest hit to semantic routes
            ticket = replace(
                tickets[self.item_id],
                cached=lookups.get(self.item_id),
                request=prompts[self.item_id],
            )
            async with lock:  # no decision may see the store and the prefix out of step
                written = await router.arecord_probe(ticket, e.answer, self.results)
                if self.item_id in probe_seq:
                    prefix.settled(probe_seq[self.item_id], written)

        async def drain(self) -> None:
            """Let cancelled probe calls end before the item is retried or the run stops."""
            await asyncio.gather(*self.probes.values(), return_exceptions=True)

    async def one(item: BatchItem) -> None:
        nonlocal answered
        steps = ItemSteps(item.id)
        try:
            routed = await arun_flow(serve_flow(router.routes, task, item.id), steps)
        except BaseException:
            await steps.drain()
            raise
        answer, results = routed.answer, steps.results
        cost = routed.cost + sum(
            router.cost_of(a) for a in results.values() if isinstance(a, Answer)
        )
        ref_cost = routed.cost if routed.route == reference else _hit_cost(item.id, routed)
        line = json.dumps(
            {
                "id": item.id,
                "answer": answer.text,
                "route": routed.route,
                "probe": routed.probe,
                "cost": cost,
                "certificate": routed.certificate.to_dict(),
            },
            default=str,
        )
        cert = routed.certificate
        row = {
            "route": routed.route,
            "probe": routed.probe,
            "cost": cost,
            "ref_cost": ref_cost,
            "bound": cert.bound,
            "mix": cert.mix,
            "effective_epsilon": cert.effective_epsilon,
            "differing_at_most": cert.differing_at_most,
        }
        if await db.asave_done(item.id, item.index, line, row):
            out.write(line + "\n")
            out.flush()
            answered += 1

    async def train(item: BatchItem) -> None:
        """A training item: the reference's answer, the learned steps' models called beside."""
        nonlocal answered
        assert stage is not None
        calls = [call(item.id, m) for m in stage.models]
        got = stage.answers_of(await asyncio.gather(*calls, return_exceptions=True))
        await store.aadd(task, trained(reference, got, config.cost_of), event_id=f"{item.id}:train")
        line, row = stage.done_record(item.id, got, config)
        if await db.asave_done(item.id, item.index, line, row):
            out.write(line + "\n")
            out.flush()
            answered += 1

    def _hit_cost(item_id: str, routed: Any) -> float | None:
        """What the reference was paid for the cached answer that served the item, if one did
        (a hit is served as the very answer the lookup found)."""
        found = lookups.get(item_id)
        hits = found.hits if found is not None else ()
        hit = next((h for h in hits if h.answer is routed.answer), None)
        return hit.cost if hit is not None else None

    async def guarded(item: BatchItem, work: Callable[[BatchItem], Awaitable[None]]) -> None:
        async with sem:
            delay = 1.0
            for attempt in range(1, run.item_attempts + 1):
                try:
                    await work(item)
                    failed.pop(item.id, None)
                    break
                except ProviderError as exc:
                    if exc.fatal:  # every item would fail the same way: stop the run
                        raise
                    failed[item.id] = str(exc)
                except SmartError as exc:
                    failed[item.id] = str(exc)
                except Exception as exc:
                    failed[item.id] = f"{type(exc).__name__}: {exc}"
                if len(reference_streak) >= REFERENCE_FAILURE_LIMIT:
                    raise _reference_down(reference, reference_streak)
                if attempt < run.item_attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
            else:  # failed for good: its probe, if any, will never be compared
                if item.id in probe_seq:
                    prefix.abandoned(probe_seq[item.id])
        await feed.advance()

    async def ledger_now() -> Ledger:
        """The ledger as the decisions see it: the bounds at the settled prefix, where the
        counters alone would count every probe in flight as differing (and could show more
        answers that may differ than the budget, mid-run, though no decision ever did)."""
        async with lock:  # the prefix must not move between the read and its state
            counters = await store.aread(task)
            state = prefix.state(counters)
        return Ledger.from_counters(counters, policy_now(), state)

    feed = ProgressFeed(progress, len(items), ledger_now, every=progress_every)

    async def each(batch: Sequence[BatchItem], work: Callable[[BatchItem], Awaitable[None]]):
        tasks = [asyncio.ensure_future(guarded(it, work)) for it in batch]
        try:
            await asyncio.gather(*tasks)
        except BaseException:  # interrupted, or a fatal error: stop every item cleanly
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    try:
        await feed.advance(resumed)
        if stage is not None:
            record_config(store, task, config)  # for `smart report` while the stage runs
            by_id = {it.id: it for it in items}
            await each([by_id[i] for i in stage.item_ids if i not in done], train)
            missing = [i for i in stage.item_ids if i not in db.done()]
            if missing:
                raise SmartError(
                    f"the learned scorers' training stage did not finish: {len(missing)} of its "
                    f"{len(stage.item_ids)} items failed (item {missing[0]}: "
                    f"{failed.get(missing[0], 'not answered')}). Run the same command again: "
                    "the answers so far are kept"
                )
            stage.claim(store, task, config, prompts, saved)
        router = start_router(run, config, store, endpoints, task)
        router.policy(task)  # built now: it records the config for `smart report`
        await each(order, one)
        await feed.flush()
    finally:
        out.close()
        done = db.done()
        _rewrite_output(run.output, done.values())
        rows = db.timeline()
        db.close()
        counters = store.read(task)
        ledger = Ledger.from_counters(counters, policy_now(), prefix.state(counters))
        if router is not None:
            router.close()
        else:
            store.close()
    routes = Counter(json.loads(line)["route"] for _, line in done.values())
    return BatchResult(
        items=len(items),
        done=len(done),
        answered_now=answered,
        resumed=resumed,
        failed=failed,
        ledger=ledger,
        routes=dict(routes.most_common()),
        output=run.output,
        state=state,
        seconds=time.monotonic() - started,
        timeline=rows,
        cache=run.cache,
    )


class _Cancel:
    """The probe calls of one item, as the flow sees them: something it can cancel."""

    def __init__(self, calls: Mapping[str, asyncio.Future[Answer]]) -> None:
        self._calls = calls

    def cancel(self) -> None:
        for c in self._calls.values():
            c.cancel()


def _reference_down(reference: str, failures: Mapping[str, BaseException]) -> ProviderError:
    provider = reference.partition(":")[0]
    where = ""
    if provider in PROVIDERS:
        where = f"--{provider}-base-url or {provider.upper()}_BASE_URL, "
    return ProviderError(
        f"stopped early: the reference {reference} failed on {len(failures)} items in a row, "
        f"answering none in between (last error: {list(failures.values())[-1]}). Items need "
        f"the reference, so the run would only fail item after item. Check its address "
        f"({where}the network) and the provider's status, then run the same command again: "
        "the answers so far are kept"
    )


def _rewrite_output(path: Path, rows: Any) -> None:
    """Atomically replace ``path`` with the given ``(index, line)`` rows, in input order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for _, line in sorted(rows):
            fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
