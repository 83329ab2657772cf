"""A task's state as the policy reads it: the store's counters (:mod:`smart_core.policy.keys`),
parsed once into typed fields.

The store keeps flat string counters so that any backend with atomic increments can hold them;
the policy reads them through :class:`TaskState` instead of looking keys up one by one. The
state is a value: views that see a candidate in a later drift epoch, or a run's settled prefix,
are new states (:meth:`TaskState.with_evidence`, the ``prefix`` field), never extra keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from . import keys as K

__all__ = ["Evidence", "TaskState"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """One candidate's probe counters: over its whole history, or within one drift epoch."""

    #: Probes on which it answered and was compared with the reference.
    compared: float = 0.0
    #: Of those, probes on which it agreed.
    agreed: float = 0.0
    #: Probes decided but not yet settled (the bounds count them as differing).
    open: float = 0.0
    #: Non-zero once it was judged unable to pay back further probes.
    dropped: float = 0.0

    @property
    def sampled(self) -> int:
        """Probes the bounds count: the compared ones and those still open (as differing).

        Which items are probed is drawn before any answer is seen, so the decided probes are a
        uniform sample; the compared ones alone need not be, when differing answers take longer.
        Counting an open probe as a differing answer can only lower the agreement seen.
        """
        return int(self.compared + max(self.open, 0.0))


_NO_EVIDENCE = Evidence()

# Counter families, by the part of the key before its first ':'.
_EVIDENCE_FIELDS = {
    K.probes_of(""): "compared",
    K.agreements(""): "agreed",
    K.probes_open(""): "open",
    K.dropped(""): "dropped",
}
_EPOCH_FIELDS = {  # "epoch.n:{epoch}:{route}" and the like: the head is up to the first ':'
    K.epoch_probes("", 0).partition(":")[0] + ":": "compared",
    K.epoch_agreements("", 0).partition(":")[0] + ":": "agreed",
    K.epoch_open("", 0).partition(":")[0] + ":": "open",
    K.epoch_dropped("", 0).partition(":")[0] + ":": "dropped",
}
_CERT_FIELDS = {
    K.cert_probes(""): "compared",
    K.cert_agreements(""): "agreed",
    K.cert_open(""): "open",
    K.cert_dropped(""): "dropped",
}
_LOOK_FIELDS = {
    K.look_probes(""): "compared",
    K.look_agreements(""): "agreed",
    K.look_open(""): "open",
}
_PER_ROUTE = {
    K.routed(""): "routed",
    K.charged(""): "charged",
    K.calls(""): "calls",
    K.call_cost(""): "call_cost",
    K.screen_calls(""): "screen_calls",
    K.screen_cost(""): "screen_cost",
}


# What each counter key holds, parsed once per key: (family, field, route, epoch). Keys are
# few (a handful per candidate) and recur in every read of the store, so a decision's parse is
# one dictionary look-up per key.
_REQUESTS, _PROBES, _SCREENED, _CERT, _LOOK = "requests", "probes", "screened", "cert", "look"
_EVIDENCE, _ROUTE, _EPOCH, _EPOCH_EVIDENCE, _OTHER = (
    "evidence",
    "route",
    "epoch",
    "epoch evidence",
    "other",
)
_PARSED: dict[str, tuple[str, str, str, int]] = {}


def _parse(key: str) -> tuple[str, str, str, int]:
    head, sep, rest = key.partition(":")
    if not sep:
        kinds = {K.REQUESTS: _REQUESTS, K.PROBES: _PROBES, K.SCREENED: _SCREENED}
        parsed = (kinds.get(key, _OTHER), "", "", 0)
    else:
        head += ":"
        if (name := _EVIDENCE_FIELDS.get(head)) is not None:
            parsed = (_EVIDENCE, name, rest, 0)
        elif (name := _PER_ROUTE.get(head)) is not None:
            parsed = (_ROUTE, name, rest, 0)
        elif (name := _CERT_FIELDS.get(head)) is not None:
            parsed = (_CERT, name, rest, 0)
        elif (name := _LOOK_FIELDS.get(head)) is not None:
            parsed = (_LOOK, name, rest, 0)
        elif head == K.epoch(""):
            parsed = (_EPOCH, "", rest, 0)
        elif (name := _EPOCH_FIELDS.get(head)) is not None:
            e, _, route = rest.partition(":")
            parsed = (_EPOCH_EVIDENCE, name, route, int(e))
        else:
            parsed = (_OTHER, "", "", 0)
    if len(_PARSED) > 100_000:
        _PARSED.clear()
    _PARSED[key] = parsed
    return parsed


@dataclass(frozen=True, slots=True)
class TaskState:
    """What the policy knows of a task: its counters, typed, read once from the store.

    Absent counters read as zero, except ``charged``, which holds only the routes whose charge
    was recorded (a batch decision writes it with the routing).
    """

    #: Requests decided so far (reserved at decision time).
    requests: float = 0.0
    #: Requests answered by the reference because they were probes.
    probes: float = 0.0
    #: Per route: requests sent to it (reserved at decision time).
    routed: Mapping[str, float] = field(default_factory=dict)
    #: Batch mode, per route with a recorded charge: sum of ``1 - L`` over its items.
    charged: Mapping[str, float] = field(default_factory=dict)
    #: Per model: calls whose cost is known, and what they cost in all.
    calls: Mapping[str, float] = field(default_factory=dict)
    call_cost: Mapping[str, float] = field(default_factory=dict)
    #: Per candidate: its probe counters over its whole history (or, in a state seen through
    #: drift epochs, over its current epoch only).
    evidence: Mapping[str, Evidence] = field(default_factory=dict)
    #: Per candidate: its drift epoch (restarts of its change detector; 0 if never restarted).
    epochs: Mapping[str, int] = field(default_factory=dict)
    #: Per (candidate, epoch >= 1): the probe counters of that epoch alone.
    epoch_evidence: Mapping[tuple[str, int], Evidence] = field(default_factory=dict)
    #: Per candidate, (agreements, probes) of the longest prefix of decided probes that are all
    #: settled (open ones among them counted), when a run that knows the decision order supplies
    #: it (:class:`~smart_core.policy.settled_prefix.SettledPrefix`); ``None`` otherwise. The
    #: bounds are then read at both sizes and the better kept.
    prefix: Mapping[str, tuple[int, int]] | None = None
    #: Batch mode with screening: requests decided in the screening stage.
    screened: float = 0.0
    #: Batch mode with screening, per candidate: its probe counters in the certification stage
    #: (the probes decided after screening), the only ones its certification bound counts.
    cert_evidence: Mapping[str, Evidence] = field(default_factory=dict)
    #: Batch mode with screening, per model: calls on screening probes and their cost.
    screen_calls: Mapping[str, float] = field(default_factory=dict)
    screen_cost: Mapping[str, float] = field(default_factory=dict)
    #: Batch mode with screening, per candidate: its probe counters within its planned look.
    look_evidence: Mapping[str, Evidence] = field(default_factory=dict)
    #: Like ``prefix``, over the certification stage's probes.
    cert_prefix: Mapping[str, tuple[int, int]] | None = None
    #: Per candidate, the settled prefix of its look probes
    #: (:meth:`~smart_core.policy.settled_prefix.SettledPrefix.look_prefix`), when a run that
    #: knows the decision order supplies it (from the first certification probe on: no look
    #: probe comes before); ``None`` otherwise.
    look_prefix: Mapping[str, Evidence] | None = None

    @classmethod
    def from_counters(
        cls,
        counters: Mapping[str, float],
        *,
        prefix: Mapping[str, tuple[int, int]] | None = None,
        cert_prefix: Mapping[str, tuple[int, int]] | None = None,
        look_prefix: Mapping[str, Evidence] | None = None,
    ) -> TaskState:
        """The state held by a store's ``counters`` (keys of :mod:`smart_core.policy.keys`)."""
        per_route: dict[str, dict[str, float]] = {name: {} for name in _PER_ROUTE.values()}
        evidence: dict[str, dict[str, float]] = {}
        epoch_evidence: dict[tuple[str, int], dict[str, float]] = {}
        cert: dict[str, dict[str, float]] = {}
        look: dict[str, dict[str, float]] = {}
        epochs: dict[str, int] = {}
        requests = probes = screened = 0.0
        for key, value in counters.items():
            parsed = _PARSED.get(key)
            if parsed is None:
                parsed = _parse(key)
            kind, name, route, epoch = parsed
            if kind is _EVIDENCE:
                evidence.setdefault(route, {})[name] = value
            elif kind is _ROUTE:
                per_route[name][route] = value
            elif kind is _EPOCH_EVIDENCE:
                epoch_evidence.setdefault((route, epoch), {})[name] = value
            elif kind is _EPOCH:
                epochs[route] = int(value)
            elif kind is _REQUESTS:
                requests = value
            elif kind is _PROBES:
                probes = value
            elif kind is _CERT:
                cert.setdefault(route, {})[name] = value
            elif kind is _LOOK:
                look.setdefault(route, {})[name] = value
            elif kind is _SCREENED:
                screened = value
        return cls(
            requests=requests,
            probes=probes,
            evidence={c: Evidence(**v) for c, v in evidence.items()},
            epochs=epochs,
            epoch_evidence={k: Evidence(**v) for k, v in epoch_evidence.items()},
            prefix=prefix,
            screened=screened,
            cert_evidence={c: Evidence(**v) for c, v in cert.items()},
            look_evidence={c: Evidence(**v) for c, v in look.items()},
            cert_prefix=cert_prefix,
            look_prefix=look_prefix,
            **per_route,
        )

    @classmethod
    def of(cls, state: TaskState | Mapping[str, float]) -> TaskState:
        """``state`` itself, or the state a plain counters mapping holds."""
        return state if isinstance(state, TaskState) else cls.from_counters(state)

    def evidence_of(self, candidate: str) -> Evidence:
        """``candidate``'s probe counters (zero if it has none)."""
        return self.evidence.get(candidate, _NO_EVIDENCE)

    def certified_by(self, candidate: str) -> Evidence:
        """``candidate``'s probe counters in the certification stage (zero if it has none)."""
        return self.cert_evidence.get(candidate, _NO_EVIDENCE)

    def looked_by(self, candidate: str) -> Evidence:
        """``candidate``'s probe counters within its planned look (zero if it has none)."""
        return self.look_evidence.get(candidate, _NO_EVIDENCE)

    def look_sample(self, candidate: str) -> Evidence:
        """The sample ``candidate``'s looks may be read on: the settled prefix of its look
        probes where the run supplies one (its ``open`` ones never settle: read as differing),
        else all of them (readable once none is open)."""
        if self.look_prefix is not None:
            return self.look_prefix.get(candidate, _NO_EVIDENCE)
        return self.looked_by(candidate)

    def epoch_of(self, candidate: str) -> int:
        """``candidate``'s drift epoch: how many times its detector has restarted it."""
        return self.epochs.get(candidate, 0)

    def in_epoch(self, candidate: str, epoch: int) -> Evidence:
        """``candidate``'s probe counters within ``epoch`` >= 1 (zero if it has none)."""
        return self.epoch_evidence.get((candidate, epoch), _NO_EVIDENCE)

    def with_evidence(
        self, evidence: Mapping[str, Evidence], epochs: Mapping[str, int] | None = None
    ) -> TaskState:
        """This state with the given candidates' evidence (and epochs) replaced. Their settled
        prefix, if any, is dropped: it counts their whole history, not the evidence given."""
        if not evidence and not epochs:
            return self
        prefix = self.prefix
        if prefix is not None:
            prefix = {c: v for c, v in prefix.items() if c not in evidence}
        return replace(
            self,
            evidence={**self.evidence, **evidence},
            epochs={**self.epochs, **(epochs or {})},
            prefix=prefix,
        )
