"""How :class:`~smart_llamaindex.SmartLLM` names its models and builds its configuration:
clear errors for an unnamed, mistyped or colliding model, and the :class:`~smart_core.SmartConfig`
its fields describe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.llms.llm import LLM

from smart_core import ConfigError, SmartConfig
from smart_core.engine.framework_adapter import config_for, model_name_of

if TYPE_CHECKING:
    from ._llm import SmartLLM

__all__ = ["build_config", "name_models"]


def _model_name(llm: Any) -> str | None:
    name = model_name_of(llm, ("model",))
    if not name:
        try:
            name = model_name_of(llm.metadata, ("model_name",))
        except Exception:
            name = ""
    return name or None


def name_models(reference: Any, candidates: Any) -> tuple[list[str], list[LLM]]:
    """Model names and LLMs, reference first; clear errors for unnamed or colliding models."""
    if not isinstance(reference, LLM):
        raise ConfigError(
            f"SmartLLM reference must be a LlamaIndex LLM, e.g. OpenAI(model='gpt-4o'); "
            f"got {reference!r}"
        )
    ref_name = _model_name(reference)
    if ref_name is None:
        raise ConfigError(
            f"SmartLLM reference: cannot tell the model name of {type(reference).__name__}; "
            "give it a `model` or metadata.model_name"
        )
    if isinstance(candidates, LLM):
        candidates = [candidates]
    if isinstance(candidates, Mapping):
        pairs = [(str(k), v, f"candidates[{k!r}]") for k, v in candidates.items()]
    elif isinstance(candidates, Sequence) and not isinstance(candidates, str):
        pairs = [(_model_name(v), v, f"candidates[{i}]") for i, v in enumerate(candidates)]
    else:
        raise ConfigError(
            "SmartLLM candidates must be a list of LlamaIndex LLMs (or a dict {name: llm}), "
            f"e.g. candidates=[OpenAI(model='gpt-4o-mini')]; got {candidates!r}"
        )
    if not pairs:
        raise ConfigError(
            "SmartLLM candidates must list at least one LLM cheaper than the reference, "
            "e.g. candidates=[OpenAI(model='gpt-4o-mini')]"
        )
    seen = {ref_name: "reference"}
    names, llms = [ref_name], [reference]
    for name, llm, where in pairs:
        if not isinstance(llm, LLM):
            raise ConfigError(f"SmartLLM {where} must be a LlamaIndex LLM, got {llm!r}")
        if name is None:
            raise ConfigError(
                f"SmartLLM {where}: cannot tell the model name of {type(llm).__name__}; pass "
                "candidates as a dict {name: llm} to name it"
            )
        if name in seen:
            raise ConfigError(
                f"SmartLLM {where}: model name {name!r} is already used by {seen[name]}; "
                f"each model needs its own name, so pass candidates as a dict, e.g. "
                f"candidates={{{name + '-2'!r}: llm}}, with prices={{{name + '-2'!r}: (IN, OUT)}}"
            )
        seen[name] = where
        names.append(name)
        llms.append(llm)
    return names, llms


def build_config(llm: SmartLLM, names: list[str]) -> SmartConfig:
    where = {n: "reference" if i == 0 else f"candidates[{i - 1}]" for i, n in enumerate(names)}
    return config_for(
        "SmartLLM",
        names,
        where,
        prices=llm.prices,
        task=llm.task,
        epsilon=llm.epsilon,
        delta=llm.delta,
        store=llm.store if isinstance(llm.store, str) else "memory://",
        expected_requests=llm.expected_requests,
        batch_size=llm.batch_size,
        audit_rate=llm.audit_rate,
        comparator=llm.comparator,
        method=llm.method,
        delta_weights=llm.delta_weights,
        cache=llm.cache,
        cache_answers=llm.cache_answers,
        tenant=llm.tenant,
        cache_ttl_seconds=llm.cache_ttl_seconds,
        cache_max_entries=llm.cache_max_entries,
        cache_similarities=llm.cache_similarities,
        cascades=llm.cascades,
        threshold_families=llm.threshold_families,
    )
