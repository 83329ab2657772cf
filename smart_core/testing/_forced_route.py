"""Forcing a router's choice of route, for adapter tests.

Which route the policy picks is tested in :mod:`smart_core.policy`; a test of how an adapter
*serves* a route (a cascade step kept or escalated, a stream held back, a probe judged) needs
that route every time, whatever the policy would pick with no evidence yet.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine.router import SmartRouter
    from ..engine.ticket import Ticket

__all__ = ["force_route"]


def force_route(router: SmartRouter, route: str, *, probe: bool = False) -> None:
    """Make every request ``router`` begins (sync or async) go to ``route``; with ``probe``,
    to the reference, with ``route`` probed beside it. The decision's reservation is the
    policy's own, so counters stay those of the decision it made."""
    begin, abegin = router.begin, router.abegin
    reference = router.config.reference.name

    def forced(ticket: Ticket) -> Ticket:
        served = reference if probe else route
        decision = replace(
            ticket.decision,
            route=served,
            probe=probe,
            probe_models=(route,) if probe else (),
        )
        return replace(ticket, decision=decision, route=served)

    def forced_begin(*args: Any, **kwargs: Any) -> Ticket:
        return forced(begin(*args, **kwargs))

    async def forced_abegin(*args: Any, **kwargs: Any) -> Ticket:
        return forced(await abegin(*args, **kwargs))

    router.begin = forced_begin  # type: ignore[method-assign]
    router.abegin = forced_abegin  # type: ignore[method-assign]
