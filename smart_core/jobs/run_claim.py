"""Which state belongs to which ``smart run``: the router on the run's counters and the run's
own state, opened and checked to be this run's before any call (another run's state or output
file is refused with what changed, rather than mixed with this one's)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.router import Endpoint, SmartRouter
from ..errors import ConfigError
from ..stores import RunState, Store, open_run_state, open_store
from ..task.config import SmartConfig
from ..task.redaction import redact_url
from .batch_input import BatchItem, check_writable, describe_change, run_record

if TYPE_CHECKING:
    from .batch_run import BatchRun

__all__ = ["open_run", "start_router"]


def open_run(
    run: BatchRun,
    key: str,
    items: Sequence[BatchItem],
    config: SmartConfig,
    restart: bool,
) -> tuple[Store, RunState]:
    """The store of the run's counters and the run's own state, checked to belong to this run
    (``restart`` first discards this run's state). The router starts later
    (:func:`start_router`): a run that trains learned scorers fits them first."""
    task = run.store_task(key)
    check_writable(run.output, "--output")
    if run.store is None:
        state = run.state_path
        check_writable(state, "--state" if run.state else "--output")
        if restart:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{state}{suffix}").unlink(missing_ok=True)
    store = open_store(config.store)
    try:
        db = open_run_state(store, task)
        try:
            _claim(run, key, items, store, db, restart)
        except BaseException:
            db.close()
            raise
    except BaseException:
        store.close()
        raise
    return store, db


def start_router(
    run: BatchRun,
    config: SmartConfig,
    store: Store,
    endpoints: Mapping[str, Endpoint],
    task: str,
) -> SmartRouter:
    """The run's router on its ``store``; the answer cache's batch starts at the run's first
    start, not at each resume."""
    router = SmartRouter(config, endpoints, store=store, seed=run.seed, wait_for_probes=True)
    if router.cache is not None:
        # An entry stored by this run before a kill stays "during the batch" (the semantic
        # index is frozen for the batch, docs/guarantee.md)
        since = store.get_meta(task, "run.cache_since")
        if since is None:
            store.set_meta(task, "run.cache_since", repr(router.cache.created_at))
        else:
            router.cache.created_at = float(since)
    return router


def _claim(
    run: BatchRun,
    key: str,
    items: Sequence[BatchItem],
    store: Store,
    db: RunState,
    restart: bool,
) -> None:
    """Refuse state or an output file of another run, then mark the state as this run's."""
    task = run.store_task(key)
    if restart and run.store is not None:
        db.clear()  # this run's state and counters only; other runs on the server stay
    previous = store.get_meta(task, "run.key")
    record = run_record(run.settings(), items)
    if previous is not None and previous != key:
        saved_record = store.get_meta(task, "run.record")
        change = describe_change(json.loads(saved_record) if saved_record else None, record)
        raise ConfigError(
            f"{run.state_path} holds another run: {change}. Pass --restart to discard it (and "
            "its answers), or choose another --output or --state to keep both"
        )
    if run.store is not None and previous is None and not restart and _has_lines(run.output):
        # A new run on a shared store would rebuild the output from its (empty) state and so
        # erase the lines another run wrote there.
        raise ConfigError(
            f"{run.output} holds answers of another run, and {redact_url(run.store)} has no "
            f"state of this one (task {task}). Pass --restart to overwrite the file, or choose "
            "another --output"
        )
    if previous is None or store.get_meta(task, "run.record") is None:
        store.set_meta(task, "run.record", json.dumps(record))
    store.set_meta(task, "run.key", key)
    store.set_meta(
        task,
        "run",
        json.dumps({"input": str(run.input), "prompt": run.prompt, "output": str(run.output)}),
    )


def _has_lines(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as fh:
            return any(line.strip() for line in fh)
    except FileNotFoundError:
        return False
