"""End to end, public API only: an LCEL chain ``prompt | SmartChatModel | StrOutputParser()``
over 2,000 ticket-triage requests, three models of different price tiers served by the local
server, each answering as a function of the prompt so the cheaper ones disagree with the
reference on a known share of tickets.

Asserted: SMART saves money (ledger savings > 1) and the realized share of answers that differ
from what the reference would have answered stays within epsilon. The numbers are printed
(``pytest -s``) for the record.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from smart_core.testing import FakeLLMServer, Prompt
from smart_langchain import SmartChatModel

REQUESTS = 2_000
EPSILON = 0.05
LABELS = ("billing", "bug", "other")
# Share of tickets on which each cheaper model answers differently from the reference.
DISAGREE = {"gpt-4o-mini": 0.02, "claude-3-5-haiku-latest": 0.06}


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def reference_label(ticket: int) -> str:
    return LABELS[int(_unit("label", ticket) * len(LABELS))]


def behaviour(model: str) -> Callable[[Prompt], str]:
    def respond(prompt: Prompt) -> str:
        ticket = int(re.search(r"#(\d+)", prompt.last_user_text).group(1))  # type: ignore[union-attr]
        label = reference_label(ticket)
        if model in DISAGREE and _unit(model, ticket) < DISAGREE[model]:
            label = LABELS[(LABELS.index(label) + 1) % len(LABELS)]
        return label

    return respond


PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Classify the support ticket. Answer with one word: billing, bug or other."),
        ("human", "Ticket #{id}: {text}"),
    ]
)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The model 'claude-3-5-haiku-latest' is deprecated")
async def test_lcel_chain_saves_money_within_epsilon_over_2000_requests() -> None:
    models = ("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-latest")
    with FakeLLMServer({m: behaviour(m) for m in models}) as server:
        llm = SmartChatModel(
            reference=ChatOpenAI(
                model="gpt-4o", base_url=server.openai_base_url, api_key="sk-test"
            ),
            candidates=[
                ChatOpenAI(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="sk-test"),
                ChatAnthropic(
                    model="claude-3-5-haiku-latest",
                    base_url=server.anthropic_base_url,
                    api_key="sk-ant-test",
                ),
            ],
            epsilon=EPSILON,
            delta=0.05,
            task="ticket-triage",
            expected_requests=REQUESTS,
            seed=7,
        )
        chain = PROMPT | llm | StrOutputParser()
        inputs = [
            {"id": i, "text": f"customer message number {i} about their account"}
            for i in range(REQUESTS)
        ]
        start = time.perf_counter()
        answers = await chain.abatch(inputs, config={"max_concurrency": 32})
        await llm.aflush()
        elapsed = time.perf_counter() - start
        ledger = llm.ledger()
        calls = {m: server.calls(m) for m in models}
        await llm.aclose()

    differing = sum(a != reference_label(i) for i, a in enumerate(answers))
    realized = differing / REQUESTS
    print(
        f"\n{REQUESTS} requests in {elapsed:.1f}s; savings {ledger.savings:.2f}x "
        f"[{ledger.savings_interval[0]:.2f}, {ledger.savings_interval[1]:.2f}]; "
        f"realized disagreement {realized:.4f} ({differing}) vs epsilon {EPSILON}; "
        f"probes {ledger.probes} (audits {ledger.audits}); server calls {calls}\n"
        + ledger.summary()
    )
    assert ledger.requests == REQUESTS
    assert set(answers) <= set(LABELS)
    assert realized <= EPSILON
    assert ledger.savings > 1.0
    assert ledger.bound >= 1 - EPSILON - 1e-9  # the mix in force still meets the target
    # Every model was called, and every candidate call the server saw is in the ledger.
    assert all(n > 0 for n in calls.values())
    routed = {r.name: r.requests for r in ledger.routes.values()}
    for name, stats in ledger.routes.items():
        assert calls[name] == stats.probes + routed[name] + stats.failures
