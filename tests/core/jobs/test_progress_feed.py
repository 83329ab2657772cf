"""ProgressFeed: every item counted, a ledger built at most every ``every`` seconds."""

from __future__ import annotations

import asyncio
import itertools

from smart_core.jobs.progress_feed import ProgressFeed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _feed(total: int, every: float):
    clock, calls, built = Clock(), [], []

    async def ledger():
        built.append(clock.now)
        return f"ledger@{clock.now}"

    feed = ProgressFeed(
        lambda n, ledger, total: calls.append((n, ledger)), total, ledger, every=every, clock=clock
    )
    return feed, clock, calls, built


def test_items_are_all_counted_and_ledgers_built_at_most_once_per_interval():
    feed, clock, calls, built = _feed(100, every=1.0)

    async def main():
        await feed.advance(0)  # the start
        for _ in range(100):
            clock.now += 0.1
            await feed.advance()

    asyncio.run(main())
    assert sum(n for n, _ in calls) == 100
    assert calls[0] == (0, "ledger@0.0")
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(built[:-1]))
    assert calls[-1][1] == f"ledger@{clock.now}"  # the last item always shows
    assert len(calls) <= 12


def test_a_flush_hands_over_what_is_pending_and_nothing_twice():
    feed, _, calls, _ = _feed(10, every=60.0)

    async def main():
        await feed.advance(0)
        await feed.advance()
        await feed.advance()
        await feed.flush()  # the run stopped early: two items pending
        await feed.flush()  # nothing new

    asyncio.run(main())
    assert [n for n, _ in calls] == [0, 2]


def test_without_a_callback_no_ledger_is_built():
    async def ledger():
        raise AssertionError("no ledger without a callback")

    feed = ProgressFeed(None, 5, ledger)
    asyncio.run(feed.advance(5))
