"""`smart bench inflight`'s job: the same requests served ordered and unordered."""

from __future__ import annotations

import pytest

from smart_core.jobs.inflight_bench import serve_in_flight


@pytest.mark.parametrize("mode", ["online", "batch"])
def test_ordered_decisions_save_more_with_many_requests_in_flight(mode):
    # Savings, not probes: unordered, a batch may also give up probing early (in-flight probes
    # read as differing make the candidate look hopeless) and then probe less and save nothing.
    ordered = serve_in_flight(mode, 64, ordered=True, requests=1_200, latency_ms=2.0, seed=1)
    unordered = serve_in_flight(mode, 64, ordered=False, requests=1_200, latency_ms=2.0, seed=1)
    for point in (ordered, unordered):
        assert point.requests == 1_200 and point.mode == mode and point.in_flight == 64
        assert 0.0 <= point.disagreement <= point.routed_share <= 1.0
    assert ordered.savings > unordered.savings
    assert ordered.routed_share > unordered.routed_share


def test_an_unknown_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="mode must be 'online' or 'batch'"):
        serve_in_flight("stream", 8, ordered=True)
