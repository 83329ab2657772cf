"""Bounds from the probes settled in decision order, for a run that decides one item at a time.

Which items are probed is drawn before any answer is seen, so the first ``k`` probes *decided*
are a uniform sample; the first ``k`` probes *settled* need not be, when differing answers take
longer. The policy therefore counts open probes as differing, which holds whatever the order but
costs dearly when many probes are in flight. A run that decides one item at a time knows the
decision order and can also hand the policy the counts of the longest prefix of decided probes
that are all settled. A confidence sequence holds at every sample size at once, so it may be
read at both sizes and the better of the two kept: the prefix wins while few probes are held
behind a slow one, the open-as-differing count when one slow probe holds back many.

The sample the prefix reads must be a prefix of *one* order fixed before the outcomes: the order
in which probes were decided in the store. That holds while this process is the only one
deciding probes of the task (whatever was decided before it started comes first in that order,
its open probes counted as differing). Once another decider's probe shows up in the counters, the
two processes' probes interleave and "everything before my first open probe" is no longer a
prefix of the store's order, so from then on the prefix is not offered (:attr:`shared`). A probe
still open ``stale_after`` seconds after its decision (its answers lost: a cancelled request, a
failed reference) is taken into the prefix as it stands in the store, open and so differing:
conservative, and it no longer holds every later probe back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import keys as K
from .state import Evidence, TaskState

__all__ = ["SettledPrefix"]

#: A family of probe counters: (route of a key, compared key, agreements key, open key).
_Family = tuple[
    Callable[[str], str | None], Callable[[str], str], Callable[[str], str], Callable[[str], str]
]
_WHOLE: _Family = (K.probe_route, K.probes_of, K.agreements, K.probes_open)
_CERT: _Family = (K.cert_route, K.cert_probes, K.cert_agreements, K.cert_open)
_LOOK: _Family = (K.look_route, K.look_probes, K.look_agreements, K.look_open)


def _is_probe_key(key: str) -> bool:
    return bool(K.probe_route(key) or K.cert_route(key))


@dataclass
class _Probe:
    #: What this probe has written to the store's probe counters so far.
    written: dict[str, float] = field(default_factory=dict)
    settled: bool = False
    #: When it was decided (the prefix's clock).
    at: float = 0.0


class SettledPrefix:
    """Tracks the probes decided in this process, in order, and what each wrote to the store.

    :meth:`state` reads the store's counters with the counts of the settled prefix: without the
    contribution of every probe after the first one still open (anything other processes or an
    earlier, crashed run left stays in, its open probes counted as differing).
    Decisions, settlements and :meth:`state` must not interleave with the store writes they
    describe: the run holds one lock around each.
    """

    def __init__(
        self, *, stale_after: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._probes: dict[int, _Probe] = {}
        self._next = 0
        self._first_open = 0
        self._stale_after = stale_after
        self._clock = clock
        #: Probes in the store before this process decided its first (``None`` until read).
        self._before: float | None = None
        #: Another decider's probes were seen in the store: no prefix from then on.
        self.shared = False

    def decided(self, increments: Mapping[str, float]) -> int | None:
        """Record a decision just written to the store; its sequence number if it is a probe."""
        if not increments.get(K.PROBES):
            return None
        seq = self._next
        self._next += 1
        if self.shared:
            return None
        written = {k: v for k, v in increments.items() if _is_probe_key(k)}
        self._probes[seq] = _Probe(written, at=self._clock())
        return seq

    def settled(self, seq: int, written: Mapping[str, float]) -> None:
        """The probe's outcomes (``written``, just added to the store) are recorded."""
        probe = self._probes.get(seq)
        if probe is None:  # already in the prefix
            return
        for k, v in written.items():
            if _is_probe_key(k):
                probe.written[k] = probe.written.get(k, 0.0) + v
        self._settle(seq)

    def abandoned(self, seq: int) -> None:
        """The probe's item failed for good: its outcome will never be recorded. It stays open
        in the store, so once in the prefix the policy counts it as differing."""
        if seq in self._probes:
            self._settle(seq)

    def prefix(self, counters: Mapping[str, float]) -> dict[str, tuple[int, int]]:
        """Per candidate with probe counters, (agreements, probes) of the settled prefix: what
        the probes after the first one still open wrote to ``counters`` is left out (the open
        ones within the prefix are counted, as differing)."""
        return self._prefix(counters, _WHOLE, self._later())

    def cert_prefix(self, counters: Mapping[str, float]) -> dict[str, tuple[int, int]]:
        """Like :meth:`prefix`, over the certification stage's probe counters (batch mode with
        screening): a probe decided after screening is in both."""
        return self._prefix(counters, _CERT, self._later())

    def look_prefix(self, counters: Mapping[str, float]) -> dict[str, Evidence]:
        """Per candidate with look probes, the settled prefix of its look's sample: the first
        look probes in decision order, up to the first one still open. Its agreements and
        compared probes, and (``open``) the probes in it that will never settle, abandoned or
        stale: a look reads them as differing. The first ``m`` look probes decided are a
        uniform sample of the items whatever settles when, so a look may be read on them while
        later look probes are out (:func:`~smart_core.policy.leader_looks.look_cap`)."""
        return self._look_prefix(counters, self._later())

    def _look_prefix(
        self, counters: Mapping[str, float], later: Mapping[str, float]
    ) -> dict[str, Evidence]:
        return {
            c: Evidence(compared=n - o, agreed=s, open=o)
            for c, (s, n, o) in self._counts(counters, _LOOK, later).items()
        }

    def _prefix(
        self, counters: Mapping[str, float], family: _Family, later: Mapping[str, float]
    ) -> dict[str, tuple[int, int]]:
        return {c: (s, n) for c, (s, n, _) in self._counts(counters, family, later).items()}

    def _later(self) -> dict[str, float]:
        """What the probes held out of the prefix wrote to the counters, summed per key."""
        later: dict[str, float] = {}
        for probe in self._probes.values():
            for k, v in probe.written.items():
                later[k] = later.get(k, 0.0) + v
        return later

    def _counts(
        self, counters: Mapping[str, float], family: _Family, later: Mapping[str, float]
    ) -> dict[str, tuple[int, int, int]]:
        """Per candidate, (agreements, probes, still open) of the prefix, the open ones among
        the probes; ``later`` is :meth:`_later`."""
        route_of, probes_of, agreements, opened = family
        out = {}
        candidates = {route for k in counters if (route := route_of(k))}
        for c in candidates:
            n, s, o = probes_of(c), agreements(c), opened(c)
            still_open = max(counters.get(o, 0.0) - later.get(o, 0.0), 0.0)
            probes = counters.get(n, 0.0) - later.get(n, 0.0) + still_open
            agreed = counters.get(s, 0.0) - later.get(s, 0.0)
            out[c] = (int(agreed), int(probes), int(still_open))
        return out

    def state(self, counters: Mapping[str, float]) -> TaskState:
        """The task's state from the store's ``counters``, with the settled prefix
        (:attr:`TaskState.prefix <smart_core.policy.state.TaskState.prefix>`): the policy reads
        its bounds at both sizes and keeps the better. Without it once another decider shares
        the task (:attr:`shared`)."""
        if not self._sole_decider(counters):
            return TaskState.from_counters(counters)
        self._abandon_stale()
        later = self._later()  # one pass over the held probes serves every family
        # Only a screened batch has certification counters, and its look probes are among them.
        cert = self._prefix(counters, _CERT, later)
        return TaskState.from_counters(
            counters,
            prefix=self._prefix(counters, _WHOLE, later),
            cert_prefix=cert or None,
            look_prefix=self._look_prefix(counters, later) if cert else None,
        )

    def holds(self, seq: int) -> bool:
        """Whether probe ``seq`` is still kept out of the prefix (decided here, not in it)."""
        return seq in self._probes

    @property
    def open(self) -> int:
        """Probes decided here and kept out of the policy's counters."""
        return len(self._probes)

    def _sole_decider(self, counters: Mapping[str, float]) -> bool:
        """Whether every probe in ``counters`` decided since this process's first read is one
        of its own. Reads and decisions must not interleave (the caller's lock), so the store's
        count of probes is those before plus the ones decided here, unless someone else decides
        too."""
        if self.shared:
            return False
        probes = float(counters.get(K.PROBES, 0.0))
        if self._before is None:
            self._before = probes - self._next
        if probes != self._before + self._next:
            self.shared = True
            self._probes.clear()  # nothing to keep out any more: every probe is read as counted
        return not self.shared

    def _abandon_stale(self) -> None:
        if self._stale_after is None:
            return
        oldest = self._clock() - self._stale_after
        while self._first_open in self._probes and self._probes[self._first_open].at <= oldest:
            self._settle(self._first_open)

    def _settle(self, seq: int) -> None:
        self._probes[seq].settled = True
        while self._first_open in self._probes and self._probes[self._first_open].settled:
            del self._probes[self._first_open]
            self._first_open += 1
