"""Bounds from the probes settled in decision order, for a run that decides one item at a time.

Which items are probed is drawn before any answer is seen, so the first ``k`` probes *decided*
are a uniform sample; the first ``k`` probes *settled* need not be, when differing answers take
longer. The policy therefore counts open probes as differing, which holds whatever the order but
costs dearly when many probes are in flight. A run that decides one item at a time knows the
decision order and can also hand the policy the counts of the longest prefix of decided probes
that are all settled. A confidence sequence holds at every sample size at once, so it may be
read at both sizes and the better of the two kept: the prefix wins while few probes are held
behind a slow one, the open-as-differing count when one slow probe holds back many.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import keys as K
from .state import TaskState

__all__ = ["SettledPrefix"]

#: A family of probe counters: (route of a key, compared key, agreements key, open key).
_Family = tuple[
    Callable[[str], str | None], Callable[[str], str], Callable[[str], str], Callable[[str], str]
]
_WHOLE: _Family = (K.probe_route, K.probes_of, K.agreements, K.probes_open)
_CERT: _Family = (K.cert_route, K.cert_probes, K.cert_agreements, K.cert_open)


def _is_probe_key(key: str) -> bool:
    return bool(K.probe_route(key) or K.cert_route(key))


@dataclass
class _Probe:
    #: What this probe has written to the store's probe counters so far.
    written: dict[str, float] = field(default_factory=dict)
    settled: bool = False


class SettledPrefix:
    """Tracks the probes decided in this process, in order, and what each wrote to the store.

    :meth:`state` reads the store's counters with the counts of the settled prefix: without the
    contribution of every probe after the first one still open (anything other processes or an
    earlier, crashed run left stays in, its open probes counted as differing).
    Decisions, settlements and :meth:`state` must not interleave with the store writes they
    describe: the run holds one lock around each.
    """

    def __init__(self) -> None:
        self._probes: dict[int, _Probe] = {}
        self._next = 0
        self._first_open = 0

    def decided(self, increments: Mapping[str, float]) -> int | None:
        """Record a decision just written to the store; its sequence number if it is a probe."""
        if not increments.get(K.PROBES):
            return None
        seq = self._next
        self._next += 1
        self._probes[seq] = _Probe({k: v for k, v in increments.items() if _is_probe_key(k)})
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
        return self._prefix(counters, _WHOLE)

    def cert_prefix(self, counters: Mapping[str, float]) -> dict[str, tuple[int, int]]:
        """Like :meth:`prefix`, over the certification stage's probe counters (batch mode with
        screening): a probe decided after screening is in both."""
        return self._prefix(counters, _CERT)

    def _prefix(self, counters: Mapping[str, float], family: _Family) -> dict[str, tuple[int, int]]:
        route_of, probes_of, agreements, opened = family
        later: dict[str, float] = {}
        for probe in self._probes.values():
            for k, v in probe.written.items():
                later[k] = later.get(k, 0.0) + v
        out = {}
        candidates = {route for k in counters if (route := route_of(k))}
        for c in candidates:
            n, s, o = probes_of(c), agreements(c), opened(c)
            still_open = max(counters.get(o, 0.0) - later.get(o, 0.0), 0.0)
            probes = counters.get(n, 0.0) - later.get(n, 0.0) + still_open
            out[c] = (int(counters.get(s, 0.0) - later.get(s, 0.0)), int(probes))
        return out

    def state(self, counters: Mapping[str, float]) -> TaskState:
        """The task's state from the store's ``counters``, with the settled prefix
        (:attr:`TaskState.prefix <smart_core.policy.state.TaskState.prefix>`): the policy reads
        its bounds at both sizes and keeps the better."""
        cert = self.cert_prefix(counters)  # only a screened batch has certification counters
        return TaskState.from_counters(
            counters, prefix=self.prefix(counters), cert_prefix=cert or None
        )

    @property
    def open(self) -> int:
        """Probes decided here and kept out of the policy's counters."""
        return len(self._probes)

    def _settle(self, seq: int) -> None:
        self._probes[seq].settled = True
        while self._first_open in self._probes and self._probes[self._first_open].settled:
            del self._probes[self._first_open]
            self._first_open += 1
