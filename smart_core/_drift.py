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
"agreement at the bound ``p0``" (Page 1954; as an e-detector, Shin, Ramdas & Rinaldo 2023),
computed over fixed windows of probes so that it is a function of counters every worker shares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "DRIFT_THRESHOLD",
    "DRIFT_WINDOW",
    "cusum",
    "drift_alternative",
    "epoch_share",
]

#: Probes per window of the detector. Windows are assigned at decision time from counters, so
#: the window of a probe never depends on its outcome.
DRIFT_WINDOW = 25
#: Windows the detector looks back over: a drop older than this has either been caught or is
#: part of the epoch's bound already.
DRIFT_LOOKBACK = 40
#: The alarm threshold on the log likelihood ratio: under agreement at the bound, a false alarm
#: comes after about ``e ** threshold`` windows on average (CUSUM's average run length), and
#: true agreement is usually well above its lower bound, which makes false alarms rarer still.
DRIFT_THRESHOLD = math.log(50.0)
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


def cusum(windows: Sequence[tuple[float, float]], p0: float, q: float) -> float:
    """The CUSUM statistic after ``windows`` (``(agreements, compared)`` per window, oldest
    first): ``S_j = max(0, S_{j-1} + llr_j)`` with ``llr`` the log likelihood ratio of agreement
    ``q`` against ``p0``. Under agreement ``>= p0`` each window's ratio has mean at most 1, which
    is what makes a large ``S`` evidence of a drop below ``p0``."""
    if not 0.0 < q < p0 < 1.0:
        return 0.0
    agree = math.log(q / p0)
    differ = math.log((1.0 - q) / (1.0 - p0))
    s = 0.0
    for agreements, compared in windows:
        s = max(0.0, s + agreements * agree + (compared - agreements) * differ)
    return s
