"""Names of the per-task counters the engine keeps in a store, defined once.

Every statistic SMART uses is a sum of these counters, so any backend with atomic increments can
hold the state and every worker derives the same policy from it.
"""

from __future__ import annotations

__all__ = [
    "ANSWERED",
    "AUDITS",
    "PROBES",
    "REF_COST",
    "REF_COST_SQ",
    "REF_N",
    "REQUESTS",
    "SPENT",
    "SPENT_PROBE_CANDIDATES",
    "agreements",
    "call_cost",
    "calls",
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
    "probe_route",
    "probes_of",
    "probes_open",
    "routed",
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
    for name in (probes_of, agreements, probes_open):
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
