"""`smart bench drift`'s measurements (smart_core.jobs.drift_bench) on a small deployment."""

from __future__ import annotations

import pytest

from smart_core.jobs.drift_bench import drift_run, run_drift_bench, summary_dicts


@pytest.mark.slow
def test_a_detected_shift_reports_its_delay_and_the_undetected_one_its_violation():
    kw = {"requests": 12_000, "before": 0.99, "epsilon": 0.05, "delta": 0.05, "audit_rate": 0.05}
    on = drift_run(4, drop=0.14, detection=True, **kw)
    off = drift_run(4, drop=0.14, detection=False, **kw)
    assert on.shift_at == off.shift_at and 3000 <= on.shift_at < 9000
    assert on.detected_after is not None and 0 <= on.detected_after < 12_000 - on.shift_at
    assert off.detected_after is None and off.false_alarms == 0
    assert on.end_agreement >= 0.95 > off.end_agreement
    assert on.post_shift_differing < off.post_shift_differing
    assert on.savings > 1.0 and off.savings > on.savings  # detection costs money after a shift


@pytest.mark.slow
def test_summaries_cover_every_drop_with_and_without_detection():
    ticks = []
    rows = run_drift_bench(
        runs=1, requests=2000, drops=(0.0, 0.1), audit_rate=0.05, progress=ticks.append
    )
    assert [r.drop for r in rows] == [0.0, 0.1] and len(ticks) == 4
    doc = summary_dicts(rows)
    assert set(doc[0]["violation_end"]) == {"on", "off"}
    assert doc[0]["false_alarm_runs"] == 0.0 and doc[0]["detected"] == 0.0
