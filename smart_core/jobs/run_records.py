"""Tickets, answers and cache lookups of ``smart run`` as the JSON text its run state keeps.

The run state (``stores._run_state``) stores strings: the stores layer knows nothing of tickets
or answers, so turning them into text and back happens here, once, for every backend.
"""

from __future__ import annotations

import dataclasses
import json

from ..cache import CacheHit, CacheLookup
from ..engine.router import Ticket
from ..policy import Decision
from ..policy.certificate import Certificate
from ..task.answer import Answer
from ..task.usage import Usage

__all__ = [
    "LOOKUP",
    "answer_from",
    "answer_json",
    "lookup_from",
    "lookup_json",
    "ticket_from",
    "ticket_json",
]

#: Where an item's answer-cache lookup is kept among its answers (model names starting with
#: ``cache:`` are refused by SmartConfig, so no model's answer is ever kept there).
LOOKUP = "cache:lookup"


def ticket_json(ticket: Ticket) -> str:
    # The request and the cache lookup it carries are not the ticket's to keep: the prompt is
    # rendered again from the item, and the lookup is saved on its own (LOOKUP).
    return json.dumps(dataclasses.asdict(dataclasses.replace(ticket, request=None, cached=None)))


def ticket_from(text: str) -> Ticket:
    raw = json.loads(text)
    d = raw["decision"]
    decision = Decision(
        route=d["route"],
        probe=d["probe"],
        probe_models=tuple(d["probe_models"]),
        audit=d["audit"],
        certificate=Certificate(**d["certificate"]),
        increments=d["increments"],
        probe_tags={k: int(v) for k, v in d.get("probe_tags", {}).items()},
        stage=str(d.get("stage", "")),
        look=tuple(d.get("look", ())),
    )
    return Ticket(raw["request_id"], decision, raw["route"], raw["fallback"])


def answer_json(answer: Answer) -> str:
    return json.dumps(
        {
            "text": answer.text,
            "value": answer.value,
            "model": answer.model,
            "usage": dataclasses.asdict(answer.usage),
            "cost": answer.cost,
            "logprobs": list(answer.logprobs) if answer.logprobs is not None else None,
        },
        default=str,
    )


def answer_from(text: str) -> Answer:
    raw = json.loads(text)
    answer = Answer(raw["text"], raw["value"], raw["model"], Usage(**raw["usage"]), raw["cost"])
    if raw.get("logprobs") is not None:  # a saved step judged by its confidence, resumed
        answer.logprobs = tuple(raw["logprobs"])
    return answer


def lookup_json(found: CacheLookup) -> str:
    """What the answer cache found for an item (no hits: a miss), as saved before it is used."""
    return json.dumps(
        [
            {
                "route": h.route,
                "answer": answer_json(h.answer),
                "cost": h.cost,
                "stored_at": h.stored_at,
                "similarity": h.similarity,
            }
            for h in found.hits
        ]
    )


def lookup_from(text: str) -> CacheLookup:
    hits = tuple(
        CacheHit(
            h["route"],
            answer_from(h["answer"]),
            float(h["cost"]),
            float(h["stored_at"]),
            float(h["similarity"]),
        )
        for h in json.loads(text)
    )
    return CacheLookup(hits)
