"""Drift: a change detector on a route's recent probes, and the delta schedule of its restarts.

The anytime bound of a route holds for traffic whose agreement does not change. When traffic
shifts (a new product, a provider silently updating a model), a bound over all history follows
the new agreement slowly. Online, SMART therefore watches each route's probes (audits included)
for a drop below the bound the mix relies on, and when it sees one it *restarts* the route: a new
*epoch* whose bound counts only the probes decided after the restart, so the route carries no
traffic until it is profiled again.

Why this keeps the promise (docs/guarantee.md, "Under shift"):

* Epoch ``e`` of a route gets the share :func:`epoch_share` ``(e)`` of the route's delta, fixed
  before any data and summing to at most 1 over all epochs. An epoch starts at a stopping time
  (the detector's alarm), and a confidence sequence started at a stopping time on observations
  that are independent of the past is as valid as one started at time 0. By the union bound,
  with probability ``1 - delta`` every epoch's bound holds for the traffic of that epoch, at every
  moment, however many restarts happen and whenever they happen.
* The detector only decides *when* to restart. A false alarm costs probes (re-profiling), never
  validity; a missed or late alarm leaves the answers served between the shift and the alarm
  uncovered, which is why its delay is measured (``smart bench drift``).

The detector is a CUSUM on the likelihood ratio of "agreement ``q`` just below the bound" against
"agreement at the bound ``p0``" (Page 1954; as an e-detector, Shin, Ramdas & Rinaldo 2023). Each
process keeps its own statistic, fed by the outcomes it sees arrive in the shared counters
between two of its decisions: the store holds no per-window state (which would grow without end
in a long-running server), and whichever worker notices a drop first records the restart for all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "DRIFT_THRESHOLD",
    "CusumState",
    "cusum",
    "cusum_step",
    "drift_alternative",
    "epoch_share",
]

#: The alarm threshold on the log likelihood ratio. Under agreement at the bound a false alarm
#: comes after thousands of probes on average (CUSUM's average run length grows like
#: ``e ** threshold`` over the ratio's drift), and true agreement is usually well above its lower
#: bound, which makes false alarms rarer still; a false alarm costs a re-profiling.
DRIFT_THRESHOLD = math.log(100.0)
#: Share of delta the first epoch keeps; the rest is spent on restarts, halving each time.
FIRST_EPOCH_SHARE = 0.95


def epoch_share(epoch: int) -> float:
    """The fixed share of a route's delta spent on its ``epoch``-th bound (0 = the first).

    ``0.95`` for the first epoch, then ``0.05 / 2**e``: the shares sum to 1, so the union bound
    over all epochs spends exactly the route's delta. The first epoch pays ``ln(1/0.95)`` (about
    0.05 nats, a few probes) for the ability to restart at all.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if epoch == 0:
        return FIRST_EPOCH_SHARE
    return (1.0 - FIRST_EPOCH_SHARE) / 2.0**epoch


def drift_alternative(bound: float, epsilon: float) -> float:
    """The agreement the detector is tuned to notice: ``epsilon / 2`` (at least 1 point) below
    the bound the mix relies on. Larger drops are noticed sooner, smaller ones later."""
    return max(bound - max(epsilon / 2.0, 0.01), 1e-6)


def cusum_step(statistic: float, agreements: float, compared: float, p0: float, q: float) -> float:
    """One CUSUM update, ``max(0, S + llr)``, for ``compared`` new outcomes of which
    ``agreements`` agreed; ``llr`` is their log likelihood ratio of agreement ``q`` against
    ``p0``. Under agreement ``>= p0`` the ratio has mean at most 1, which is what makes a large
    statistic evidence of a drop below ``p0``."""
    if not 0.0 < q < p0 < 1.0:
        return 0.0
    llr = agreements * math.log(q / p0) + (compared - agreements) * math.log((1.0 - q) / (1.0 - p0))
    return max(0.0, statistic + llr)


def cusum(batches: Sequence[tuple[float, float]], p0: float, q: float) -> float:
    """The CUSUM statistic after ``batches`` of ``(agreements, compared)``, oldest first."""
    s = 0.0
    for agreements, compared in batches:
        s = cusum_step(s, agreements, compared, p0, q)
    return s


class CusumState:
    """One candidate's detector in one process: its statistic, and the counts (compared,
    agreed) it has already taken in, so each decision feeds it only what arrived since."""

    __slots__ = ("agreed", "compared", "statistic")

    def __init__(self, compared: float, agreed: float) -> None:
        self.compared = compared
        self.agreed = agreed
        self.statistic = 0.0

    def update(self, compared: float, agreed: float, p0: float, q: float) -> float:
        """Take in the counts as they stand now; returns the statistic."""
        new_compared, new_agreed = compared - self.compared, agreed - self.agreed
        if new_compared < 0 or new_agreed < 0:  # the counters went back (a new store): start over
            self.statistic = 0.0
        elif new_compared > 0:
            self.statistic = cusum_step(self.statistic, new_agreed, new_compared, p0, q)
        self.compared, self.agreed = compared, agreed
        return self.statistic
