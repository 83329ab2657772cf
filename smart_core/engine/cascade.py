"""Cascades as routes: ask cheap models in order, keep the first answer a scorer accepts, else
the reference's.

Served, a cascade yields its steps' calls as ``Call(..., to_user=False)``: a step's answer may
still be rejected, so a streaming driver reads it whole and relays nothing of it until the
cascade has decided; the accepted answer (or the reference's, streamed as it comes) is what the
user gets. On a probe the flow has already called every model once, so :meth:`probe_answer`
runs the same chain over those answers, without a call: what the cascade *would* have answered,
compared with the reference's like any candidate's, and the calls it would have paid for.

The guarantee needs nothing new: a probe is a uniform draw of requests, the cascade's would-be
answer on it is exactly what serving it would have given, so its agreement bound is as valid as
a model's, and the mix treats it as one more route (docs/guarantee.md, "Cascades"). A step
judged by a learned scorer adds one condition, checked here: the scorer is frozen before the
route exists (an untrained one is refused), and a probe it was trained on is never counted for
it (:class:`~smart_core.task.learned_scorer.TrainingOverlapError`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..task.answer import Answer
from ..task.cascades import Cascade
from ..task.comparators import Comparator
from ..task.learned_scorer import is_untrained
from ..task.scorers import score as score_of
from .effects import Call, Effect
from .increments import SPENT_ATTRIBUTE
from .probe_run import CUT_SHORT
from .routes import RouteAnswer

if TYPE_CHECKING:
    from .ticket import Ticket

__all__ = ["CascadeRoute"]


class CascadeRoute:
    """A :class:`~smart_core.task.cascades.Cascade` served and judged as one route."""

    __slots__ = ("_learned", "cascade", "comparator", "models", "name", "reference")

    #: The flow hands :meth:`probe_answer` the request too (for scorers that read it).
    reads_request = True

    def __init__(self, cascade: Cascade, reference: str, comparator: Comparator) -> None:
        for step in cascade.steps:
            if is_untrained(step.scorer):
                raise ConfigError(
                    f"cascade {cascade.name!r}: its learned scorer is not trained yet, so the "
                    "route can be neither served nor counted. Fit it on early probes first "
                    "(smart replay does so per order; in code: fit_scorer on ProbeExamples, then "
                    "CascadeStep(model, scorer) with the frozen scorer, or scorer="
                    "'learned:PATH.json' for a saved one)"
                )
        self._learned = tuple(s.scorer for s in cascade.steps if hasattr(s.scorer, "check_counts"))
        self.cascade = cascade
        self.reference = reference
        self.comparator = comparator
        self.name = cascade.name
        self.models: tuple[str, ...] = (*cascade.models, reference)

    def __repr__(self) -> str:
        return f"CascadeRoute({self.name!r})"

    def serve(self, ticket: Ticket) -> Generator[Effect, Any, Answer | None]:
        request = getattr(ticket, "request", None)
        got: dict[str, Answer] = {}
        calls: list[Answer] = []
        for i, step in enumerate(self.cascade.steps):
            for model in step.models:
                if model in got:
                    continue
                answer = yield from _call(ticket, model, calls, to_user=False)
                if answer is None:  # a stream that ended with nothing: nothing to judge
                    return None
                if not answer.model:
                    answer.model = model
                got[model] = answer
                calls.append(answer)
            score = score_of(step.scorer, got[step.model], got, self.comparator, request)
            if score >= step.threshold:
                return RouteAnswer.of(
                    got[step.model], tuple(calls), step=i, step_name=step.label, score=score
                )
        final = yield from _call(ticket, self.reference, calls)
        if final is None:
            return None
        if not final.model:
            final.model = self.reference
        return self._escalated(final, calls)

    def probe_answer(
        self,
        answers: Mapping[str, Answer | BaseException],
        request: Any = None,
        probe_id: str | None = None,
    ) -> Answer | BaseException:
        """The answer the chain would have served, from one call of each model (the reference's
        included), with the calls it would have paid for; a call that failed or was cut short
        where the chain needs it is returned as is (a failure, or a differing answer).
        ``request`` is the probed request, for scorers that read it; ``probe_id`` its request
        id, which a learned scorer refuses to be counted on if it was trained on it."""
        for scorer in self._learned:
            scorer.check_counts(probe_id=probe_id)
        calls: list[Answer] = []
        seen: set[str] = set()
        for i, step in enumerate(self.cascade.steps):
            for model in step.models:
                if model in seen:
                    continue
                answer = answers.get(model, CUT_SHORT)
                if not isinstance(answer, Answer):
                    return answer
                seen.add(model)
                calls.append(answer)
            got = {m: a for m in seen if isinstance(a := answers[m], Answer)}
            score = score_of(step.scorer, got[step.model], got, self.comparator, request)
            if score >= step.threshold:
                return RouteAnswer.of(
                    got[step.model], tuple(calls), step=i, step_name=step.label, score=score
                )
        final = answers.get(self.reference, CUT_SHORT)
        if not isinstance(final, Answer):
            return final
        return self._escalated(final, calls)

    def _escalated(self, final: Answer, calls: list[Answer]) -> RouteAnswer:
        return RouteAnswer.of(
            final, (*calls, final), step=len(self.cascade.steps), step_name="ref", score=None
        )


def _call(
    ticket: Ticket, model: str, spent: list[Answer], *, to_user: bool = True
) -> Generator[Effect, Any, Answer | None]:
    """One call of the chain; if it fails, the answers already paid for ride on its exception
    (:data:`~.increments.SPENT_ATTRIBUTE`), so the fallback that follows records their cost."""
    try:
        return (yield Call(ticket, model, to_user=to_user))
    except Exception as exc:
        if spent:  # (an exception type without a __dict__ cannot carry them: not recorded)
            with contextlib.suppress(AttributeError):
                setattr(exc, SPENT_ATTRIBUTE, tuple(spent))
        raise
