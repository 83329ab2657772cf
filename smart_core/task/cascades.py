"""Cascades as configured: ordered steps, each a model and a scorer, ending at the reference.

A cascade (FrugalGPT) asks its steps in order; a step whose scorer accepts its answer answers
the user, and a request no step accepts goes to the reference. To SMART a cascade is a *route*
(``smart_core.engine.cascade.CascadeRoute``): its agreement with the reference is measured on
probes like a model's, so a cascade is mixed only as far as its measured agreement allows,
whatever its scorer is worth.

This module is the data side: the declared steps, the cascade's stable, readable route name
(``cascade:gpt-4o-mini[label=A]>ref``, ``cascade:a+b[agree]>ref``), the plain forms a TOML file
or a store holds, and ``"auto"``: the cascades built from the candidates and the comparator.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from ..errors import ConfigError
from .comparators import Comparator
from .scorers import AgreementScorer, LabelScorer, Scorer, parse_scorer, wants_logprobs

__all__ = [
    "ESCALATION_SHARE",
    "Cascade",
    "CascadeStep",
    "auto_cascades",
    "learned_auto_cascades",
    "logprob_models",
    "parse_cascades",
    "threshold_families",
]

#: The share of a cascade's requests assumed to reach the reference before any is seen (only
#: the prior cost of the route; its real cost is learned from what it spends).
ESCALATION_SHARE = 0.5

_EXAMPLE = (
    "e.g. cascades='auto', or cascades=[Cascade([CascadeStep('gpt-4o-mini', 'label:A')])], or "
    "in TOML: [[cascades]] steps = [{model = 'gpt-4o-mini', scorer = 'label:A'}]"
)


@dataclass(frozen=True)
class CascadeStep:
    """Ask ``model``; keep its answer when ``scorer`` gives it at least ``threshold``."""

    model: str
    scorer: Scorer | Any
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"cascade step: model must be a model name, got {self.model!r}")
        object.__setattr__(self, "scorer", parse_scorer(self.scorer))
        if not isinstance(self.threshold, int | float) or not math.isfinite(self.threshold):
            raise ConfigError(
                f"cascade step {self.model!r}: threshold must be a finite number, got "
                f"{self.threshold!r}; e.g. threshold=0.5 (binary scorers give 0 or 1)"
            )

    @property
    def models(self) -> tuple[str, ...]:
        """The models this step calls: its own, then those its scorer reads."""
        return tuple(dict.fromkeys((self.model, *self.scorer.needs)))

    @property
    def label(self) -> str:
        """The step as it appears in the route name: ``model[label=A]``, ``a+b[agree]``."""
        judged = self.scorer.name
        if self.threshold != 0.5:
            judged += f">={self.threshold:g}"
        return "+".join(self.models) + f"[{judged}]"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "scorer": self.scorer.spec(), "threshold": self.threshold}


@dataclass(frozen=True)
class Cascade:
    """Steps tried in order before the reference; ``name`` defaults to one read off the steps."""

    steps: Sequence[CascadeStep]
    name: str = field(default="")

    def __post_init__(self) -> None:
        steps = tuple(_step(s) for s in self.steps)
        if not steps:
            raise ConfigError(f"a cascade needs at least one step before the reference; {_EXAMPLE}")
        object.__setattr__(self, "steps", steps)
        if not self.name:
            name = "cascade:" + ">".join(s.label for s in steps) + ">ref"
            object.__setattr__(self, "name", name)

    @property
    def models(self) -> tuple[str, ...]:
        """Every model the steps may call, in the order they may call them (not the reference)."""
        return tuple(dict.fromkeys(m for s in self.steps for m in s.models))

    @property
    def untrained(self) -> bool:
        """Whether a step's learned scorer is still to be fit: the cascade is a plan, not yet a
        route (docs/cascades.md, "Learned scorer")."""
        return any(getattr(s.scorer, "frozen", True) is False for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": [s.to_dict() for s in self.steps]}

    def prior_cost(self, model_costs: Mapping[str, float], reference: str) -> float:
        """Cost per request before any is seen: every step model's, and the reference's at the
        assumed :data:`ESCALATION_SHARE` (the real cost is then learned from what it spends)."""
        own = sum(model_costs[m] for m in self.models)
        return own + ESCALATION_SHARE * model_costs[reference]


def _step(value: Any) -> CascadeStep:
    if isinstance(value, CascadeStep):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"model", "scorer", "threshold"}
        if unknown or "model" not in value or "scorer" not in value:
            raise ConfigError(
                f"cascade step {dict(value)!r}: give 'model' and 'scorer' (and optionally "
                f"'threshold'); {_EXAMPLE}"
            )
        return CascadeStep(**value)
    raise ConfigError(f"cascade step must be a CascadeStep or a mapping, got {value!r}; {_EXAMPLE}")


def _cascades(value: Any) -> list[Cascade]:
    """One declared cascade, or in the plain form a grid of them: a step whose ``threshold`` is
    a list stands for one cascade per threshold (a threshold family, certified as one route)."""
    if isinstance(value, Cascade):
        return [value]
    if isinstance(value, Mapping):
        unknown = set(value) - {"steps", "name"}
        if unknown or "steps" not in value:
            raise ConfigError(f"cascade {dict(value)!r}: give 'steps' (and optionally 'name')")
        steps = list(value["steps"])
        grids = [
            i
            for i, s in enumerate(steps)
            if isinstance(s, Mapping) and isinstance(s.get("threshold"), list | tuple)
        ]
        name = str(value.get("name") or "")
        if not grids:
            return [Cascade(steps, name)]
        if len(grids) > 1 or name or not steps[grids[0]]["threshold"]:
            raise ConfigError(
                f"cascade {dict(value)!r}: a list of thresholds is a grid of cascades named "
                "after their thresholds; give it on one step only, non-empty and without "
                "'name', e.g. steps = [{model = 'gpt-4o-mini', scorer = 'logprob', "
                "threshold = [0.99, 0.95, 0.9]}]"
            )
        i = grids[0]
        return [
            Cascade([*steps[:i], {**steps[i], "threshold": t}, *steps[i + 1 :]])
            for t in steps[i]["threshold"]
        ]
    raise ConfigError(f"each cascade must be a Cascade or a mapping, got {value!r}; {_EXAMPLE}")


def threshold_families(cascades: Sequence[Cascade]) -> list[tuple[str, ...]]:
    """The threshold families among ``cascades``: groups of two or more whose steps are the
    same but for one step's threshold, each ordered from the highest threshold (the member that
    escalates most, so agrees most) to the lowest, as fixed-sequence testing wants
    (:mod:`smart_core.stats.fixed_sequence`). Each cascade is in at most one family (the
    largest group first); read off the config alone, never off data, as the test requires.
    Cascades whose scorer is still to be trained (``learned``) form none: each member would be
    fit and frozen on its own."""
    groups: dict[tuple, list[tuple[float, str]]] = {}
    for cascade in cascades:
        specs = [(s.model, s.scorer.spec(), s.threshold) for s in cascade.steps]
        if any(spec in ("learned",) or spec.startswith("learned:") for _, spec, _ in specs):
            continue
        for i, (_, _, threshold) in enumerate(specs):
            key = (i, tuple(x if j != i else x[:2] for j, x in enumerate(specs)))
            groups.setdefault(key, []).append((threshold, cascade.name))
    taken: set[str] = set()
    families = []
    for members in sorted(groups.values(), key=len, reverse=True):
        members = [(t, name) for t, name in members if name not in taken]
        if len(members) < 2:
            continue
        ordered = tuple(name for _, name in sorted(members, key=lambda m: -m[0]))
        families.append(ordered)
        taken.update(ordered)
    return families


def auto_cascades(candidates: Sequence[str], comparator: Comparator) -> list[Cascade]:
    """The cascades ``"auto"`` stands for, over ``candidates``:

    * for a comparator that declares its labels (``choice:A,B,C,D``, ``choice:yes,no``), per
      candidate and label ``v``: keep the candidate's answer when it is ``v``, else the reference;
    * per pair of candidates: keep the first's answer when the two agree, else the reference.
    """
    out: list[Cascade] = []
    labels = getattr(comparator, "labels", None) or ()
    for c in candidates:
        for v in labels:
            out.append(Cascade([CascadeStep(c, LabelScorer([v]))]))
    for a, b in combinations(candidates, 2):
        out.append(Cascade([CascadeStep(a, AgreementScorer(b))]))
    return out


#: The threshold of the learned cascades ``"auto+learned"`` adds: keep the cheap answer when
#: the frozen scorer gives it at least this chance of agreeing with the reference.
LEARNED_THRESHOLD = 0.9


def learned_auto_cascades(candidates: Sequence[str]) -> list[Cascade]:
    """One learned cascade per candidate (``"auto+learned"``): keep its answer when a scorer
    fit on the first probes and then frozen gives it at least :data:`LEARNED_THRESHOLD`."""
    from .learned_scorer import UntrainedScorer

    return [
        Cascade([CascadeStep(c, UntrainedScorer(), threshold=LEARNED_THRESHOLD)])
        for c in candidates
    ]


def parse_cascades(
    value: Any, *, reference: str, candidates: Sequence[str], comparator: Comparator
) -> list[Cascade]:
    """The cascades a config's ``cascades`` setting stands for, checked against its models."""
    if value is None:
        return []
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return auto_cascades(candidates, comparator)
        if value.strip().lower() == "auto+learned":
            return [*auto_cascades(candidates, comparator), *learned_auto_cascades(candidates)]
        raise ConfigError(
            f"cascades must be 'auto' or a list of cascades (or 'auto+learned'), got {value!r}"
        )
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise ConfigError(f"cascades must be 'auto' or a list of cascades, got {value!r}")
    out = [c for v in value for c in _cascades(v)]
    seen: set[str] = {reference, *candidates}
    for i, cascade in enumerate(out):
        for model in cascade.models:
            if model == reference:
                raise ConfigError(
                    f"cascades[{i}] {cascade.name!r} calls the reference {reference!r} in a "
                    "step; every cascade ends at the reference already, list cheaper models only"
                )
            if model not in candidates:
                raise ConfigError(
                    f"cascades[{i}] {cascade.name!r} calls {model!r}, which is not a candidate; "
                    f"add it to candidates or use one of {list(candidates)}"
                )
        if cascade.name in seen:
            raise ConfigError(
                f"cascades[{i}]: the route name {cascade.name!r} is taken; give it another name"
            )
        seen.add(cascade.name)
    return out


def logprob_models(cascades: Iterable[Cascade]) -> frozenset[str]:
    """The models an adapter must ask for token logprobs: those of steps whose scorer reads them.

    They are asked on every call, served or probed alike, so a cascade judged on a probe sees
    exactly what it would see served (the logprobs change no answer, only what is reported).
    """
    return frozenset(s.model for c in cascades for s in c.steps if wants_logprobs(s.scorer))


def cascade_specs(cascades: Iterable[Cascade]) -> list[dict[str, Any]]:
    """The plain (JSON, TOML) form of ``cascades``; ValueError for a cascade whose scorer is a
    function or a frozen learned model (neither can be rebuilt from text; the learned one is
    saved by its own ``save``), so a store keeps the counters only."""
    out = [c.to_dict() for c in cascades]
    for cascade in out:
        for step in cascade["steps"]:
            if step["scorer"].startswith(("callable:", "learned@")):
                raise ValueError(
                    f"cascade {cascade['name']!r}: a function scorer has no plain form"
                )
    return out
