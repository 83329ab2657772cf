"""The ledger: what a task has cost, what it would have cost on the reference alone, and why.

Everything is derived from the task's counters, so any process reading the store (a report, a
dashboard, another worker) sees the same ledger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..cache.answer_cache import HIT_REFERENCE_COST, HITS, MISSES, hits_for
from ..policy import Policy, TaskState
from ..policy import keys as K

__all__ = ["Ledger", "RouteStats"]


@dataclass(frozen=True, slots=True)
class RouteStats:
    """What is known about one candidate route."""

    name: str
    requests: int
    probes: int
    agreements: int
    lower: float
    upper: float
    mean_cost: float
    failures: int
    fallbacks: int
    dropped: bool
    #: Probes on which the comparator raised on this route's answer (counted as differing).
    compare_errors: int = 0
    #: Probes whose call was cancelled before it answered (counted as differing).
    cut_short: int = 0
    #: Requests sent straight to the reference while this route was cooling down after failing.
    cooled: int = 0
    #: Batch mode: at most this many of the items routed to it differ from the reference's
    #: (``min(R_c, G_c)``); ``None`` online and with a per-item (Clopper-Pearson) bound.
    differing_at_most: float | None = None
    #: Online drift detection: how many times this route was restarted after its agreement
    #: dropped, and the probes and agreements of its current epoch (what its bound counts).
    restarts: int = 0
    epoch_probes: int = 0
    epoch_agreements: int = 0


@dataclass(frozen=True, slots=True)
class Ledger:
    """Per-task spend and savings, with the policy currently in force and what it guarantees.

    ``reference_estimate`` is exact for requests the reference answered and, for the others, the
    reference's mean observed cost; ``reference_interval`` is a 95 % normal interval for that
    estimate (it is an estimate of money, not part of the quality guarantee).

    What is guaranteed depends on ``mode`` (see :class:`~smart_core.Certificate`): online,
    ``bound`` is the guaranteed agreement of ``mix``; in batch mode it is the count
    ``differing_at_most`` against ``budget`` (``epsilon * batch_size``), and ``mix``, ``bound``
    and ``effective_epsilon`` only describe the plan for the items not yet decided.
    :meth:`guarantee` says it in words; ``routed`` is how many requests each route was sent.
    """

    task: str
    mode: str
    epsilon: float
    delta: float
    method: str
    requests: int
    probes: int
    audits: int
    spent: float
    probe_candidate_spend: float
    reference_estimate: float
    reference_interval: tuple[float, float]
    savings: float
    savings_interval: tuple[float, float]
    mix: dict[str, float]
    bound: float
    effective_epsilon: float
    routes: dict[str, RouteStats] = field(default_factory=dict)
    reference: str = ""
    routed: dict[str, int] = field(default_factory=dict)
    #: Calls of the reference that raised.
    reference_failures: int = 0
    batch_size: int | None = None
    budget: float | None = None
    differing_at_most: float | None = None
    #: The answer cache: requests served from it and requests it held nothing for (counted
    #: only where it is on), and an estimate of what the hits saved: for each, the mean cost of
    #: the route the mix had drawn for it (the reference on a probe).
    cache_hits: int = 0
    cache_misses: int = 0
    cache_saved: float = 0.0
    #: What the reference was paid for the answers the hits served, when it produced them.
    cache_hit_reference_cost: float = 0.0
    #: Batch mode with learned scorers to fit (``smart run``): the run's first items, which
    #: trained them, answered by the reference before the batch certified (``batch_size``, the
    #: rest) began. Counted in ``requests``, ``probes``, ``routed`` and the money; they differ
    #: nowhere, so the batch's count bounds the whole run's.
    trained: int = 0

    @classmethod
    def from_counters(
        cls, counters: Mapping[str, float], policy: Policy, state: TaskState | None = None
    ) -> Ledger:
        """The ledger of ``counters`` under ``policy``; its bounds are read from ``state`` if
        given (``smart run``'s settled prefix, as its decisions read them), else from the
        counters, where a probe in flight counts as differing."""
        state = state if state is not None else TaskState.from_counters(counters)
        view = policy.view(state)
        ref = policy.reference
        ref_n = counters.get(K.REF_N, 0.0)
        ref_cost = counters.get(K.REF_COST, 0.0)
        ref_sq = counters.get(K.REF_COST_SQ, 0.0)
        trained = counters.get(K.TRAINED, 0.0)
        requests = counters.get(K.REQUESTS, 0.0) + trained
        # Only answered requests would have cost the reference anything: a request whose
        # reference failed saves nothing. (Stores written before the answered counter: all.)
        answered = counters.get(K.ANSWERED, requests)
        others = max(answered - ref_n, 0.0)
        if ref_n > 0:
            mean = ref_cost / ref_n
            var = max(ref_sq / ref_n - mean * mean, 0.0)
            half = 1.96 * math.sqrt(var / ref_n) * others
        else:
            mean = policy.expected_cost(state, ref)
            half = mean * others  # no observation yet: say so with a wide interval
        estimate = ref_cost + mean * others
        interval = (max(estimate - half, ref_cost), estimate + half)
        spent = counters.get(K.SPENT, 0.0)

        def ratio(x: float) -> float:
            return x / spent if spent > 0 else 1.0

        charges = policy.batch_charges(state, view.lower)
        routes = {}
        for c in policy.candidates:
            e = state.epoch_of(c)
            routes[c] = RouteStats(
                name=c,
                requests=int(counters.get(K.routed(c), 0.0)),
                probes=int(counters.get(K.probes_of(c), 0.0)),
                agreements=int(counters.get(K.agreements(c), 0.0)),
                lower=view.lower[c],
                upper=view.upper[c],
                mean_cost=policy.expected_cost(state, c),
                failures=int(counters.get(K.failures(c), 0.0)),
                fallbacks=int(counters.get(K.fallbacks(c), 0.0)),
                dropped=bool(counters.get(K.epoch_dropped(c, e) if e else K.dropped(c))),
                compare_errors=int(counters.get(K.compare_errors(c), 0.0)),
                cut_short=int(counters.get(K.cut_short(c), 0.0)),
                cooled=int(counters.get(K.cooled(c), 0.0)),
                differing_at_most=None if charges is None else charges[c],
                restarts=e,
                epoch_probes=int(counters.get(K.epoch_probes(c, e), 0.0)) if e else 0,
                epoch_agreements=int(counters.get(K.epoch_agreements(c, e), 0.0)) if e else 0,
            )
        return cls(
            task=policy.task,
            mode=policy.mode,
            epsilon=policy.epsilon,
            delta=policy.delta,
            method=policy.method,
            requests=int(requests),
            probes=int(counters.get(K.PROBES, 0.0) + trained),
            audits=int(counters.get(K.AUDITS, 0.0)),
            spent=spent,
            probe_candidate_spend=counters.get(K.SPENT_PROBE_CANDIDATES, 0.0),
            reference_estimate=estimate,
            reference_interval=interval,
            savings=ratio(estimate),
            savings_interval=(ratio(interval[0]), ratio(interval[1])),
            mix=view.mix,
            bound=view.bound,
            effective_epsilon=view.effective_epsilon,
            routes=routes,
            reference=ref,
            routed={
                r: int(counters.get(K.routed(r), 0.0) + (trained if r == ref else 0.0))
                for r in (ref, *policy.candidates)
            },
            reference_failures=int(counters.get(K.failures(ref), 0.0)),
            batch_size=policy.batch_size,
            budget=policy.epsilon * policy.batch_size if policy.batch_size else None,
            differing_at_most=None if charges is None else sum(charges.values()),
            cache_hits=int(counters.get(HITS, 0.0)),
            cache_misses=int(counters.get(MISSES, 0.0)),
            cache_saved=_cache_saved(counters, state, policy),
            cache_hit_reference_cost=counters.get(HIT_REFERENCE_COST, 0.0),
            trained=int(trained),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def guarantee(self) -> str:
        """What is guaranteed now, in one sentence (batch: a count; online: an agreement)."""
        confidence = _percent(1.0 - self.delta)
        if self.mode != "batch" or self.batch_size is None or self.budget is None:
            return (
                f"guaranteed agreement {self.bound:.4f} (target {1 - self.epsilon:.4f}) with "
                f"confidence {confidence}"
            )
        ref = f"{self.reference}'s" if self.reference else "the reference's"
        budget, items = _count(self.budget), f"{self.batch_size + self.trained:,}"
        if self.trained:  # the training items differ nowhere: the budget is the rest's
            budget += f" = epsilon x the {self.batch_size:,} items after the {self.trained:,} "
            budget += "that trained the learned scorers"
        if self.differing_at_most is None:
            # A per-item bound (Clopper-Pearson) states no count tighter than the promise.
            return (
                f"at most {_count(self.budget)} of the batch's {items} answers may differ from "
                f"{ref} (budget = epsilon x {self.batch_size:,}), with confidence {confidence}"
            )
        differing = _count(self.differing_at_most)
        if self.requests >= self.batch_size + self.trained:
            return (
                f"at most {differing} of the batch's {items} answers may differ from {ref} "
                f"(budget {budget}), with confidence {confidence}"
            )
        return (
            f"at most {differing} of the {self.requests:,} answers so far may differ from {ref} "
            f"(budget {budget} for the batch's {items}), with confidence {confidence}"
        )

    def headline(self) -> str:
        """The guarantee in a few words, for a progress line: batch, the count against the
        budget ("at most 47 of 1,000 may differ (budget 50)"); online, the mix's agreement."""
        if self.mode != "batch" or self.batch_size is None or self.budget is None:
            return f"guaranteed agreement {self.bound:.3f}"
        items, budget = f"{self.batch_size + self.trained:,}", _count(self.budget)
        if self.differing_at_most is None:
            return f"budget: at most {budget} of {items} may differ"
        return f"at most {_count(self.differing_at_most)} of {items} may differ (budget {budget})"

    def summary(self) -> str:
        """A few human-readable lines."""
        lo, hi = self.savings_interval
        batch = self.mode == "batch" and self.batch_size is not None
        size = f": {self.batch_size + self.trained:,} items" if batch else ""
        lines = [
            f"task {self.task} ({self.mode} mode{size}, epsilon={self.epsilon:g},"
            f" delta={self.delta:g}, bound: {self.method})",
            f"  requests {self.requests}, probes {self.probes} (audits {self.audits})"
            + (f"; {self.trained} trained the learned scorers" if self.trained else ""),
            f"  spent ${self.spent:.4f}; reference only ~${self.reference_estimate:.4f}"
            f"  -> savings {self.savings:.2f}x [{lo:.2f}, {hi:.2f}]",
            f"  probe overhead on candidates ${self.probe_candidate_spend:.4f}",
        ]
        if batch:
            # The plan's mix and its bookkeeping bound are not a promise about agreement: say
            # what is promised (a count against the budget) and where the items went.
            assert self.batch_size is not None
            lines.append(f"  guarantee: {self.guarantee()}")
            total = max(sum(self.routed.values()), 1)
            lines.append(
                "  routed: "
                + ", ".join(f"{r} {n} ({n / total:.1%})" for r, n in self.routed.items())
            )
            left = max(self.batch_size + self.trained - self.requests, 0)
            if left:
                lines.append(f"  plan for the {left:,} items not yet decided: {_mix(self.mix)}")
        else:
            lines.append(f"  mix: {_mix(self.mix)}  (guaranteed agreement {self.bound:.4f})")
        if self.cache_hits or self.cache_misses:
            looked = self.cache_hits + self.cache_misses
            lines.append(
                f"  answer cache: {self.cache_hits} hits, {self.cache_misses} misses"
                f" ({self.cache_hits / looked:.1%} served from it), saved ~${self.cache_saved:.4f}"
            )
        if self.reference:
            lines.append(
                f"  {self.reference} (reference): {self.routed.get(self.reference, 0)} routed,"
                f" failed {self.reference_failures}"
            )
        for r in self.routes.values():
            # A dropped candidate is no longer explored; it may still carry traffic (and be
            # audited) when the profiling already put it in the mix.
            status = ""
            if r.dropped:
                in_mix = self.mix.get(r.name, 0.0) > 0.0
                status = " (profiling done; audits only)" if in_mix else " (dropped)"
            routed = f"{r.requests} routed"
            if r.differing_at_most is not None and r.requests:
                routed += f" (at most {_count(r.differing_at_most)} of them may differ)"
            # Failures are not disagreements, so they appear nowhere else: a candidate that is
            # down would otherwise read as merely unused.
            trouble = (
                f"; failed {r.failures} (fell back {r.fallbacks}),"
                f" comparator errors {r.compare_errors}"
            )
            if r.cut_short:
                trouble += f", probes cut short {r.cut_short}"
            if r.cooled:
                trouble += f", sent to the reference while cooling down {r.cooled}"
            if r.restarts:
                times = "once" if r.restarts == 1 else f"{r.restarts} times"
                trouble += (
                    f"; restarted {times} after its agreement dropped, since then"
                    f" {r.epoch_agreements}/{r.epoch_probes} agreed"
                )
            lines.append(
                f"  {r.name}: {routed}, {r.agreements}/{r.probes} agreed,"
                f" bound [{r.lower:.4f}, {r.upper:.4f}]{trouble}{status}"
            )
        return "\n".join(lines)


def _cache_saved(counters: Mapping[str, float], state: TaskState, policy: Policy) -> float:
    """Each hit saved a call of the route the mix had drawn for it, at that route's mean cost."""
    head = hits_for("")
    saved = 0.0
    for key, n in counters.items():
        if key.startswith(head) and n:
            try:
                saved += n * policy.expected_cost(state, key[len(head) :])
            except (KeyError, ValueError):  # a route this config no longer has
                continue
    return saved


def _count(x: float) -> str:
    """A bound on a count of answers, as the whole number it implies (47.9 allows 47)."""
    return f"{math.floor(x + 1e-9):,}"


def _percent(x: float) -> str:
    return f"{round(x * 100, 6):g}%"


def _mix(mix: Mapping[str, float]) -> str:
    return ", ".join(f"{r} {w:.1%}" for r, w in mix.items()) or "-"
