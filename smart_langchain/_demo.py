"""The `smart demo` pipeline: the demo workload through ``prompt | SmartChatModel | parser``.

It lives here, not in ``smart_core.jobs.demo``, because the engine must not import LangChain;
``smart demo`` loads it when the ``langchain`` extra is installed. It is what a LangChain user
writes: real ``ChatOpenAI``/``ChatAnthropic`` models (pointed at the local simulated server unless
``live``), an LCEL chain, and nothing SMART-specific but the model in the middle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel
from langchain_openai import ChatOpenAI

from ._chat_model import SmartChatModel

__all__ = ["run_demo_chain"]


def _chat_model(spec: str, base_urls: Mapping[str, str | None], max_tokens: int) -> BaseChatModel:
    """A real LangChain chat model for ``provider:model``; keys come from the environment."""
    provider, model = spec.split(":", 1)
    base_url = base_urls.get(provider)
    if provider == "openai":
        if base_url is None:  # live: OPENAI_API_KEY from the environment
            return ChatOpenAI(model=model, max_tokens=max_tokens)
        return ChatOpenAI(
            model=model,
            base_url=base_url,
            api_key="sk-simulated",
            max_tokens=max_tokens,
            stream_usage=True,
        )
    if provider == "anthropic":
        if base_url is None:
            return ChatAnthropic(model=model, max_tokens=max_tokens)
        return ChatAnthropic(
            model=model, base_url=base_url, api_key="sk-ant-simulated", max_tokens=max_tokens
        )
    raise ValueError(f"demo model {spec!r}: provider must be openai or anthropic")


def run_demo_chain(
    inputs: Sequence[Mapping[str, Any]],
    *,
    prompt: str,
    reference: str,
    candidates: Sequence[str],
    comparator: str,
    store: str,
    base_urls: Mapping[str, str | None],
    epsilon: float,
    delta: float,
    concurrency: int,
    seed: int,
    progress: Callable[[int, Any, int], None] | None = None,
    max_tokens: int = 8,
) -> list[dict[str, Any]]:
    """Answer every input through the LCEL chain; one row per input, in input order.

    Rows carry what the demo's summary and chart read: ``answer``, ``route``, ``probe``,
    ``cost`` (the answering call, plus this request's share of candidate probe calls),
    ``ref_cost`` (set when the reference answered), and the certificate's ``bound``, ``mix``
    and ``effective_epsilon``.
    """
    llm = SmartChatModel(
        reference=_chat_model(reference, base_urls, max_tokens),
        candidates=[_chat_model(c, base_urls, max_tokens) for c in candidates],
        epsilon=epsilon,
        delta=delta,
        batch_size=len(inputs),  # a batch of known size: the batch guarantee applies
        comparator=comparator,
        task="demo-triage-lcel",
        store=store,
        wait_for_probes=True,
        seed=seed,
    )
    chain = ChatPromptTemplate.from_template(prompt) | llm
    chain = chain | RunnableParallel(
        answer=StrOutputParser(),
        smart=RunnableLambda(lambda message: message.response_metadata["smart"]),
    )
    spec_of = {spec.split(":", 1)[1]: spec for spec in (reference, *candidates)}
    results: list[dict[str, Any] | None] = [None] * len(inputs)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int, item: Mapping[str, Any]) -> None:
        async with gate:
            results[i] = await chain.ainvoke(dict(item))
        if progress is not None:
            progress(1, llm.ledger(), len(inputs))

    async def go() -> float:
        try:
            # The tickets are generated independently at random, so their order is already a
            # random order, blind to their content: what batch mode needs.
            with llm.router.shuffled_batch():
                await asyncio.gather(*(one(i, item) for i, item in enumerate(inputs)))
            await llm.aflush()
            return llm.ledger().probe_candidate_spend
        finally:
            await llm.aclose()

    probe_spend = asyncio.run(go())
    return _rows(results, spec_of, reference.split(":", 1)[1], probe_spend)


def _rows(
    results: Sequence[dict[str, Any] | None],
    spec_of: Mapping[str, str],
    reference: str,
    probe_spend: float,
) -> list[dict[str, Any]]:
    """Chart rows from the chain's outputs; candidate probe spend spread over probe rows."""
    probes = sum(1 for r in results if r is not None and r["smart"]["probe"])
    share = probe_spend / probes if probes else 0.0
    rows = []
    for index, result in enumerate(results):
        assert result is not None
        smart = result["smart"]
        route = spec_of.get(smart["route"], smart["route"])
        answered = float(smart["cost"])
        rows.append(
            {
                "index": index,
                "answer": result["answer"],
                "route": route,
                "probe": bool(smart["probe"]),
                "cost": answered + (share if smart["probe"] else 0.0),
                "ref_cost": answered if smart["route"] == reference else None,
                "bound": smart["bound"],
                "mix": {spec_of.get(k, k): v for k, v in smart["mix"].items()},
                "effective_epsilon": smart["effective_epsilon"],
                # Batch mode: how many of the batch's answers may differ so far, and the budget.
                "batch_size": smart.get("batch_size"),
                "budget": smart.get("budget"),
                "differing_at_most": smart.get("differing_at_most"),
            }
        )
    return rows
