"""force_route: every request a router begins, sync or async, goes to the forced route (or, as a
probe, to the reference with that route probed beside it)."""

from __future__ import annotations

import asyncio

from smart_core import ModelSpec, SmartConfig, SmartRouter
from smart_core.testing import force_route


def _router() -> SmartRouter:
    return SmartRouter(
        SmartConfig(
            task="t",
            epsilon=0.1,
            reference=ModelSpec(name="big", input_price=10.0, output_price=30.0),
            candidates=[ModelSpec(name="small", input_price=0.1, output_price=0.4)],
        )
    )


def test_every_ticket_goes_to_the_forced_route():
    router = _router()
    # With no evidence yet the policy probes: the reference answers.
    assert router.begin().route == "big"
    force_route(router, "small")
    tickets = [router.begin() for _ in range(5)] + [asyncio.run(router.abegin())]
    assert {t.route for t in tickets} == {"small"}
    assert not any(t.decision.probe for t in tickets)


def test_a_forced_probe_answers_with_the_reference_and_probes_the_route():
    router = _router()
    force_route(router, "small", probe=True)
    ticket = router.begin()
    assert ticket.route == "big" and ticket.decision.probe
    assert ticket.decision.probe_models == ("small",)
