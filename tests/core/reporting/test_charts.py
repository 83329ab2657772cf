"""The summary chart of `smart report --png`: what the answer cache did is on it."""

from __future__ import annotations

from types import SimpleNamespace

from smart_core.reporting.charts import cache_caption, plot_ledger


def _ledger(task: str, hits: int, misses: int, saved: float) -> SimpleNamespace:
    return SimpleNamespace(
        task=task,
        reference_estimate=2.0,
        spent=1.0,
        routed={"gpt-4o": 30, "gpt-4o-mini": 70},
        mix={"gpt-4o": 1.0},
        cache_hits=hits,
        cache_misses=misses,
        cache_saved=saved,
    )


def test_the_caption_names_hits_misses_and_savings_of_tasks_that_looked_up():
    ledgers = [_ledger("support", 25, 75, 0.125), _ledger("plain", 0, 0, 0.0)]
    assert cache_caption(ledgers) == "support: cache 25 hits / 75 misses (25%), saved $0.1250"
    assert cache_caption([_ledger("plain", 0, 0, 0.0)]) == ""


def test_the_chart_is_drawn_with_and_without_a_cache(tmp_path):
    for name, ledgers in {
        "cache.png": [_ledger("support", 25, 75, 0.125)],
        "plain.png": [_ledger("plain", 0, 0, 0.0)],
    }.items():
        path = plot_ledger(ledgers, tmp_path / name, title="smart report")
        assert path.exists() and path.stat().st_size > 1_000
