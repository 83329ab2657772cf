"""Names of the per-task counters the engine keeps in a store, defined once.

Every statistic SMART uses is a sum of these counters, so any backend with atomic increments can
hold the state and every worker derives the same policy from it.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "ANSWERED",
    "AUDITS",
    "LEARNED_FREEZE",
    "PROBES",
    "REF_COST",
    "REF_COST_SQ",
    "REF_N",
    "REQUESTS",
    "SCREENED",
    "SPENT",
    "SPENT_PROBE_CANDIDATES",
    "TRAINED",
    "agreements",
    "call_cost",
    "calls",
    "cert_agreements",
    "cert_dropped",
    "cert_open",
    "cert_probes",
    "cert_route",
    "charged",
    "compare_errors",
    "cooled",
    "cut_short",
    "dropped",
    "epoch",
    "epoch_agreements",
    "epoch_dropped",
    "epoch_open",
    "epoch_probes",
    "failures",
    "fallbacks",
    "look_agreements",
    "look_open",
    "look_probes",
    "look_route",
    "probe_route",
    "probes_of",
    "probes_open",
    "routed",
    "screen_calls",
    "screen_cost",
]

#: Requests decided (reserved at decision time, so the batch budget counts in-flight work).
REQUESTS = "requests"
#: Requests whose answer was recorded (finished); requests decided but never answered (the
#: reference failed, the run was killed) are in REQUESTS only.
ANSWERED = "answered"
#: Requests answered by the reference because they were probes (profiling or audit).
PROBES = "probes"
#: Probes drawn on requests the mix had sent to a candidate.
AUDITS = "audits"
#: Batch mode with screening: requests decided during the screening stage (the first ones of the
#: batch). The certification stage's bounds count only probes decided after it
#: (:mod:`smart_core.policy.screened_batch`).
SCREENED = "screened"
#: Batch mode with learned scorers to fit (``smart run``): items of the training stage, the run's
#: first items, answered by the reference with the learned steps' models called beside them. Never
#: in REQUESTS or PROBES, which the batch's policy reads: the batch it certifies is the rest
#: (smart_core.jobs.run_training). The ledger adds them back.
TRAINED = "trained"
#: Prefix of the counter naming the learned scorers a task's processes serve, one per
#: training plan (``learned.freeze:<plan>``; its value is their fits' fingerprint, 48 bits,
#: written once by the first process to claim the freeze: smart_core.engine.scorer_training).
LEARNED_FREEZE = "learned.freeze"
#: USD spent on every call of the task.
SPENT = "spent"
#: USD spent on candidate calls made only to measure agreement during probes.
SPENT_PROBE_CANDIDATES = "spent.probe_candidates"
#: Reference calls observed, their cost and squared cost (for the reference-only estimate).
REF_N = "ref.n"
REF_COST = "ref.cost"
REF_COST_SQ = "ref.cost_sq"


def probes_of(route: str) -> str:
    """Probes on which ``route`` answered and was compared with the reference."""
    return f"probe.n:{route}"


def probes_open(route: str) -> str:
    """Probes of ``route`` decided but not yet settled (+1 at the decision, -1 once its answer is
    compared or its call fails). Bounds count them as differing: an answer that is slow *because*
    it differs must not be left out of the sample while the faster, agreeing ones are in."""
    return f"probe.open:{route}"


def probe_route(key: str) -> str | None:
    """The route of one of a candidate's probe counters (compared, agreeing, open), else None."""
    return _route_of(key, probes_of, agreements, probes_open)


def _route_of(key: str, *families: Callable[[str], str]) -> str | None:
    """The route ``key`` names, if it is a counter of one of these per-route families."""
    for name in families:
        head = name("")
        if key.startswith(head):
            return key[len(head) :]
    return None


def agreements(route: str) -> str:
    """Probes on which ``route`` agreed with the reference."""
    return f"probe.agree:{route}"


def failures(route: str) -> str:
    """Calls of ``route`` that raised (not counted as disagreements)."""
    return f"fail:{route}"


def compare_errors(route: str) -> str:
    """Probes on which the comparator raised on ``route``'s answer (counted as differing: served,
    that answer would have gone to the user unchecked)."""
    return f"compare.error:{route}"


def cooled(route: str) -> str:
    """Requests the mix sent to ``route`` that went to the reference instead because ``route``
    was cooling down after failing several times in a row (:mod:`smart_core.engine.cooldown`)."""
    return f"cooled:{route}"


def cut_short(route: str) -> str:
    """Probes of ``route`` whose call was cancelled before it answered (the event loop ended, the
    router was closed without waiting). Counted as differing: routed, the call would have run."""
    return f"probe.cut:{route}"


def routed(route: str) -> str:
    """Requests the mix sent to ``route`` (reserved at decision time)."""
    return f"route.n:{route}"


def fallbacks(route: str) -> str:
    """Requests sent to ``route`` that fell back to the reference after a failure."""
    return f"fallback:{route}"


def calls(model: str) -> str:
    """Calls of ``model`` whose cost is known."""
    return f"call.n:{model}"


def call_cost(model: str) -> str:
    """USD spent on ``model``."""
    return f"call.cost:{model}"


def charged(route: str) -> str:
    """Batch mode: sum of ``1 - L`` over the items sent to ``route``, each at its decision."""
    return f"charged:{route}"


def dropped(route: str) -> str:
    """Set to 1 once ``route`` is judged unable to pay back further probes."""
    return f"dropped:{route}"


def epoch(route: str) -> str:
    """Restarts of ``route`` after its change detector saw its agreement drop (online mode).
    Its bound then counts only the probes of the current epoch (:mod:`smart_core.stats.drift`)."""
    return f"epoch:{route}"


def epoch_probes(route: str, epoch: int) -> str:
    """Like :func:`probes_of`, for the probes of ``route`` decided in ``epoch`` >= 1 (epoch 0
    uses the all-history counters)."""
    return f"epoch.n:{epoch}:{route}"


def epoch_agreements(route: str, epoch: int) -> str:
    """Like :func:`agreements`, within ``epoch`` >= 1."""
    return f"epoch.agree:{epoch}:{route}"


def epoch_open(route: str, epoch: int) -> str:
    """Like :func:`probes_open`, within ``epoch`` >= 1."""
    return f"epoch.open:{epoch}:{route}"


def epoch_dropped(route: str, epoch: int) -> str:
    """Like :func:`dropped`, within ``epoch`` >= 1 (a restarted route is probed again)."""
    return f"epoch.dropped:{epoch}:{route}"


def cert_probes(route: str) -> str:
    """Like :func:`probes_of`, for the probes of ``route`` decided in the certification stage
    (after screening): the only probes its certification bound counts."""
    return f"cert.n:{route}"


def cert_agreements(route: str) -> str:
    """Like :func:`agreements`, within the certification stage."""
    return f"cert.agree:{route}"


def cert_open(route: str) -> str:
    """Like :func:`probes_open`, within the certification stage."""
    return f"cert.open:{route}"


def cert_dropped(route: str) -> str:
    """Like :func:`dropped`, within the certification stage."""
    return f"cert.dropped:{route}"


def screen_calls(model: str) -> str:
    """Calls of ``model`` on screening probes whose cost is known: the certification stage's
    share of delta is chosen from the screening stage alone, costs included."""
    return f"screen.calls:{model}"


def screen_cost(model: str) -> str:
    """USD spent on ``model`` on screening probes."""
    return f"screen.cost:{model}"


def look_probes(route: str) -> str:
    """Like :func:`cert_probes`, for the certification probes of ``route`` that make up its one
    planned look (the first ones, up to the size screening fixed)."""
    return f"look.n:{route}"


def look_agreements(route: str) -> str:
    """Like :func:`cert_agreements`, within ``route``'s planned look."""
    return f"look.agree:{route}"


def look_open(route: str) -> str:
    """Like :func:`cert_open`, within ``route``'s planned look."""
    return f"look.open:{route}"


def look_route(key: str) -> str | None:
    """The route of one of a candidate's planned-look probe counters, else None."""
    return _route_of(key, look_probes, look_agreements, look_open)


def cert_route(key: str) -> str | None:
    """The route of one of a candidate's certification-stage probe counters (its look's
    included), else None."""
    return _route_of(
        key, cert_probes, cert_agreements, cert_open, look_probes, look_agreements, look_open
    )
