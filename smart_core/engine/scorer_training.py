"""Online train-then-freeze: a router fits its learned cascades on its own early probes.

A cascade declared with an untrained learned scorer (``scorer = "learned"``) is a plan until
enough probes know its step's answer and the reference's (docs/cascades.md, "Learned scorer").
Online (the adapters, ``smart serve``), the router keeps those probes as they are recorded, fits
and freezes the scorers once the largest ``train`` is reached, and from then on each such
cascade is a route like any other, under a name carrying its scorers' fingerprints, so its
counters start empty. What keeps the guarantee (docs/guarantee.md, "Learned scorers"):

* **Its share of delta is set aside from the start.** The online policy splits delta over the
  open routes *and* the pending cascades (``OnlineMixPolicy(reserved=...)``), so the frozen
  route takes exactly the share its plan held and no open route's share ever changes.
* **One freeze per task and plan, whichever process gets there first.** Each process fits on
  its own probes, writes its fits to the store's metadata under their fingerprint, then claims
  the freeze with one idempotent event whose counter names that fingerprint. The first claim
  wins; every process (and a restarted one) serves the fits the counter names, so two
  processes never certify two different scorers on one share of delta. The fits are written
  before the claim, so a process dying between the two leaves nothing half done.
* **Only later probes count.** The frozen route exists only in the policy built after the
  freeze, so no probe decided before it (the training probes among them) can be on its books;
  a training probe that came up anyway would raise ``TrainingOverlapError``.

While a plan waits, every probe whose request is known also calls the learned steps' models
(paid, and counted as probe spend), so training does not stall when the mix stops probing a
candidate; those answers count for nothing else than training.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigError, StoreError
from ..policy import keys as K
from ..policy import refuse_batch_training
from ..stores import Store
from ..task.answer import Answer
from ..task.cascades import Cascade
from ..task.learned_scorer import features, is_untrained
from .learned_training import (
    Fits,
    TrainingProbe,
    apply_fits,
    fit_steps,
    fits_fingerprint,
    fits_from_json,
    fits_to_json,
    training_models,
)

if TYPE_CHECKING:
    from ..task.config import SmartConfig
    from .ticket import Ticket

__all__ = ["ScorerTraining", "claim_fits", "frozen_config", "stored_config", "training_plan"]

_log = logging.getLogger("smart_core")


def training_plan(cascades: Sequence[Cascade]) -> str:
    """An id of what the untrained steps of ``cascades`` ask for (each (model, ``train``)): the
    freeze is claimed per plan, so a config that changes its learned steps trains anew."""
    wanted = sorted(
        {(s.model, s.scorer.train) for c in cascades for s in c.steps if is_untrained(s.scorer)}
    )
    return hashlib.sha256(repr(wanted).encode()).hexdigest()[:12]


def _freeze_key(plan: str) -> str:
    return f"{K.LEARNED_FREEZE}:{plan}"


def _fits_key(plan: str, chosen: int) -> str:
    return f"learned.fits:{plan}:{chosen:012x}"


def stored_fits(store: Store, task: str, plan: str) -> Fits | None:
    """The fits claimed for ``task``'s training ``plan`` (by this process or another), if any."""
    chosen = store.read(task).get(_freeze_key(plan))
    if not chosen:
        return None
    text = store.get_meta(task, _fits_key(plan, int(chosen)))
    return None if text is None else fits_from_json(text)


def claim_fits(store: Store, task: str, plan: str, fits: Fits) -> Fits | None:
    """The fits every process serves for ``task``'s ``plan``: those claimed first, which are
    ``fits`` unless another process claimed before. ``None`` if the claim cannot be read back
    (then nothing is served and the plan stays pending)."""
    claimed = stored_fits(store, task, plan)
    if claimed is not None:
        return claimed
    chosen = int(fits_fingerprint(fits)[:12], 16)  # 48 bits: exact in a float counter
    store.set_meta(task, _fits_key(plan, chosen), fits_to_json(fits))
    store.add(task, {_freeze_key(plan): float(chosen)}, event_id=f"learned-freeze:{plan}")
    return stored_fits(store, task, plan)


def frozen_config(config: SmartConfig, fits: Fits) -> SmartConfig:
    """``config`` with its learned cascades frozen by ``fits``; ``delta_weights`` naming a
    declared cascade follow it to its frozen name."""
    cascades = config.cascade_list()
    frozen = apply_fits(cascades, fits)
    renamed = {c.name: f.name for c, f in zip(cascades, frozen, strict=True)}
    weights = config.delta_weights
    if weights:
        weights = {renamed.get(name, name): w for name, w in weights.items()}
    return config.replace(cascades=frozen, delta_weights=weights)


def stored_config(config: SmartConfig, store: Store, task: str) -> SmartConfig:
    """The config ``task`` is served under: its learned cascades frozen by the fits claimed in
    ``store``, or as declared while they train (``smart report`` reads a store so)."""
    declared = config.untrained_cascades()
    if not declared:
        return config
    fits = stored_fits(store, task, training_plan(declared))
    if fits is not None:
        return frozen_config(config, fits)
    if config.batch_size is not None:  # a run still in its training stage: no learned route yet
        return config.replace(cascades=[c for c in config.cascade_list() if not c.untrained])
    return config


class ScorerTraining:
    """The training of one router's learned cascades, task by task (thread-safe)."""

    def __init__(self, config: SmartConfig, store: Store) -> None:
        self._config = config
        self._store = store
        self._declared = config.untrained_cascades()
        self._plan = training_plan(self._declared)
        #: Online, the router fits the learned cascades itself; a batch router serves only fits
        #: a training stage claimed in the store before it started (smart_core.jobs.run_training).
        self._online = config.batch_size is None
        if self._declared:  # refused at start-up, not at the first request
            if not self._online and not self._claimed(config.task):
                refuse_batch_training(config)
            features([None], [Answer(text="")], config.comparator)  # needs scikit-learn
        #: The models a training probe calls beside the reference.
        self.models = training_models(self._declared)
        self._lock = threading.Lock()
        self._probes: dict[str, list[TrainingProbe]] = {}
        self._served: dict[str, SmartConfig] = {}  # per task, once frozen
        self._busy: set[str] = set()  # tasks being fit (or given up on after a failed fit)

    def __bool__(self) -> bool:
        return bool(self._declared)

    def _claimed(self, task: str) -> bool:
        try:
            return stored_fits(self._store, task, self._plan) is not None
        except (StoreError, ConfigError):
            return False

    def serving_config(self, task: str) -> SmartConfig:
        """The config ``task``'s policy is built from: frozen if its fits are claimed (here or in
        the store), else as declared (the policy then reserves the pending cascades' share)."""
        if not self._declared:
            return self._config
        with self._lock:
            if task in self._served:
                return self._served[task]
        try:
            fits = stored_fits(self._store, task, self._plan)
        except StoreError:  # unreachable: keep training; the claim reads the store again
            return self._config
        except ConfigError as exc:  # stored fits that no longer load: serve without them
            _log.warning("learned cascades of task %r: %s; they stay unused", task, exc)
            self._give_up(task)
            return self._config
        return self._config if fits is None else self._serve(task, fits)

    def collected(self, task: str) -> int:
        """Training probes kept for ``task`` so far (0 once its scorers are frozen)."""
        with self._lock:
            return len(self._probes.get(task, ()))

    def probe_models(self, ticket: Ticket) -> tuple[str, ...]:
        """Models a probe of ``ticket`` calls for training beside those its routes need."""
        if not self._online or not self._declared or ticket.request is None or not ticket.probe:
            return ()
        with self._lock:
            return () if ticket.task in self._served or ticket.task in self._busy else self.models

    def observe(
        self, ticket: Ticket, reference: Answer, answers: Mapping[str, Answer | BaseException]
    ) -> list[TrainingProbe] | None:
        """Keep a recorded probe for training; the task's training probes when there are now
        enough to fit (pass them to :meth:`freeze`), else ``None``."""
        if not self._online or not self._declared or ticket.request is None or not ticket.probe:
            return None
        task = ticket.task
        got = {m: a for m, a in answers.items() if m in self.models and isinstance(a, Answer)}
        got[self._config.reference.name] = reference
        with self._lock:
            if task in self._served or task in self._busy:
                return None
            probes = self._probes.setdefault(task, [])
            probes.append(TrainingProbe(ticket.request_id, ticket.request, got))
            if not _enough(self._declared, probes):
                return None
            self._busy.add(task)
            return list(probes)

    def freeze(self, task: str, probes: Sequence[TrainingProbe]) -> bool:
        """Fit on ``probes``, claim the freeze, and serve the claimed fits; True if ``task``'s
        routes changed (its policy must be rebuilt). A fit or store that fails is logged and
        leaves the cascades pending: nothing is ever served from them then."""
        ref = self._config.reference.name
        try:  # another process may have frozen first: then its fits, and no fit here
            claimed = stored_fits(self._store, task, self._plan)
            if claimed is None:
                fits = fit_steps(self._declared, probes, ref, self._config.comparator)
                claimed = claim_fits(self._store, task, self._plan, fits)
        except Exception:
            _log.exception("learned cascades of task %r: training failed; they stay unused", task)
            return False
        if claimed is None:
            _log.warning("learned cascades of task %r: the freeze could not be read back", task)
            return False
        self._serve(task, claimed)
        return True

    def _give_up(self, task: str) -> None:
        with self._lock:
            self._busy.add(task)
            self._probes.pop(task, None)

    def _serve(self, task: str, fits: Fits) -> SmartConfig:
        config = frozen_config(self._config, fits)
        with self._lock:
            self._served.setdefault(task, config)
            self._probes.pop(task, None)
            self._busy.discard(task)
            return self._served[task]


def _enough(declared: Sequence[Cascade], probes: Sequence[TrainingProbe]) -> bool:
    """Whether every untrained step has its ``train`` probes that know its model's answer."""
    for cascade in declared:
        for step in cascade.steps:
            if is_untrained(step.scorer):
                known = sum(isinstance(p.answers.get(step.model), Answer) for p in probes)
                if known < step.scorer.train:
                    return False
    return True
