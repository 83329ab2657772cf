"""``/metrics``: each task's ledger, read from the shared store at scrape time.

The numbers come from the store, not from this process, so every worker of a deployment
reports the same totals and a scrape of any one of them is the whole picture.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..engine.router import SmartRouter

__all__ = ["LedgerCollector"]


class LedgerCollector(Collector):
    """Requests, probes, spend, the reference-only estimate, savings, the bound in force,
    each route's bound and share, the answer cache's hits, misses and savings, and the training
    of learned scorers, per task."""

    def __init__(self, routers: Mapping[str, SmartRouter]) -> None:
        self.routers = routers

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("smart_requests", "Requests served.", labels=["task"])
        probes = CounterMetricFamily("smart_probes", "Requests that were probes.", labels=["task"])
        spend = CounterMetricFamily(
            "smart_spend_usd", "USD spent on every model call.", labels=["task"]
        )
        reference = GaugeMetricFamily(
            "smart_reference_only_usd",
            "Estimated USD had every request gone to the reference.",
            labels=["task"],
        )
        savings = GaugeMetricFamily(
            "smart_savings_ratio", "Reference-only estimate over spend.", labels=["task"]
        )
        bound = GaugeMetricFamily(
            "smart_bound",
            "Guaranteed agreement of the mix in force (online) or budget bookkeeping (batch).",
            labels=["task"],
        )
        routed = CounterMetricFamily(
            "smart_route_requests", "Requests sent to each route.", labels=["task", "route"]
        )
        lower = GaugeMetricFamily(
            "smart_route_lower_bound",
            "Each route's lower bound on its agreement with the reference.",
            labels=["task", "route"],
        )
        hits = CounterMetricFamily(
            "smart_cache_hits", "Requests served from the answer cache.", labels=["task"]
        )
        misses = CounterMetricFamily(
            "smart_cache_misses",
            "Requests that looked in the answer cache and found nothing to serve.",
            labels=["task"],
        )
        saved = GaugeMetricFamily(
            "smart_cache_saved_usd",
            "Estimated USD the answer cache's hits saved (the mean cost of the route each "
            "hit replaced).",
            labels=["task"],
        )
        pending = GaugeMetricFamily(
            "smart_learned_pending",
            "Cascades with a learned scorer still training (nothing served from them; their "
            "share of delta reserved), as this process sees them.",
            labels=["task"],
        )
        collected = GaugeMetricFamily(
            "smart_learned_training_probes",
            "Probes this process has kept to fit its learned scorers on (0 once frozen).",
            labels=["task"],
        )
        for task, router in self.routers.items():
            ledger = router.ledger(task)
            if router.training:
                pending.add_metric([task], len(router.policy(task).reserved))
                collected.add_metric([task], router.training.collected(task))
            requests.add_metric([task], ledger.requests)
            probes.add_metric([task], ledger.probes)
            spend.add_metric([task], ledger.spent)
            reference.add_metric([task], ledger.reference_estimate)
            savings.add_metric([task], ledger.savings)
            bound.add_metric([task], ledger.bound)
            for route, count in ledger.routed.items():
                routed.add_metric([task, route], count)
            for route, stats in ledger.routes.items():
                lower.add_metric([task, route], stats.lower)
            if router.cache is not None:
                hits.add_metric([task], ledger.cache_hits)
                misses.add_metric([task], ledger.cache_misses)
                saved.add_metric([task], ledger.cache_saved)
        yield from (requests, probes, spend, reference, savings, bound, routed, lower)
        yield from (hits, misses, saved, pending, collected)
