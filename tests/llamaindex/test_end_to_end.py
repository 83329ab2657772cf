"""End to end: a RAG pipeline answering 1,000 questions through ``Settings.llm = SmartLLM(...)``,
served by the local server with three price tiers (gpt-4o reference, gpt-4o-mini and
claude-3-5-haiku candidates). Each model derives its answer from the question in the prompt, and
the cheaper ones get a known share of questions wrong, so the test can compare every answer the
user got with what the reference would have answered. Public API only."""

from __future__ import annotations

import asyncio
import random
import re
import time

import pytest
from llama_index.core import Document, MockEmbedding, Settings, VectorStoreIndex

from smart_core.testing import Behaviour, FakeLLMServer, Prompt
from smart_llamaindex import SmartLLM

from .conftest import HAIKU, MINI, REFERENCE, anthropic_llm, openai_llm

pytestmark = pytest.mark.filterwarnings("ignore:The model:DeprecationWarning")

QUESTIONS = 1000
EPSILON = 0.05
WRONG_SHARE = {REFERENCE: 0.0, MINI: 0.01, HAIKU: 0.15}
_NUMBER = re.compile(r"Question (\d+):")


def reference_answer(n: int) -> str:
    return f"Item code WX-{n:04d}."


def model(name: str) -> Behaviour:
    """Answers question n like the reference, except on a fixed pseudo-random share of n."""

    def respond(prompt: Prompt) -> str:
        n = int(_NUMBER.findall(prompt.text)[-1])
        if random.Random(f"{name}:{n}").random() < WRONG_SHARE[name]:
            return f"Item code WX-{(n * 7 + 3) % 10000:04d}."
        return reference_answer(n)

    return Behaviour(respond)


@pytest.mark.slow
async def test_rag_over_1000_questions_saves_money_within_epsilon(restore_settings):
    docs = [
        Document(text=f"Shelf {i} holds the items whose codes end in {i}; codes read WX-nnnn.")
        for i in range(10)
    ]
    with FakeLLMServer({name: model(name) for name in WRONG_SHARE}) as server:
        Settings.embed_model = MockEmbedding(embed_dim=8)
        Settings.llm = SmartLLM(
            reference=openai_llm(server, REFERENCE),
            candidates=[openai_llm(server, MINI), anthropic_llm(server, HAIKU)],
            epsilon=EPSILON,
            delta=0.05,
            task="support-rag",
            expected_requests=QUESTIONS,
            seed=7,
        )
        engine = VectorStoreIndex.from_documents(docs).as_query_engine(similarity_top_k=2)
        limit = asyncio.Semaphore(16)

        async def ask(n: int) -> str:
            async with limit:
                return str(await engine.aquery(f"Question {n}: which item code is asked for?"))

        started = time.perf_counter()
        answers = await asyncio.gather(*(ask(n) for n in range(QUESTIONS)))
        await Settings.llm.aflush()
        elapsed = time.perf_counter() - started

        ledger = Settings.llm.ledger("support-rag")
        served = {name: server.calls(name) for name in WRONG_SHARE}

    differing = sum(a != reference_answer(n) for n, a in enumerate(answers))
    realized = differing / QUESTIONS
    print(
        f"\n{QUESTIONS} questions in {elapsed:.1f}s; savings {ledger.savings:.2f}x "
        f"[{ledger.savings_interval[0]:.2f}, {ledger.savings_interval[1]:.2f}]; realized "
        f"disagreement {realized:.3%} (epsilon {EPSILON:.0%}); probes {ledger.probes} "
        f"(audits {ledger.audits}); calls {served}; mix {ledger.mix}"
    )
    print(ledger.summary())
    assert ledger.requests == QUESTIONS
    assert ledger.savings > 1
    assert realized <= EPSILON
    assert served[MINI] + served[HAIKU] > ledger.probes  # candidates answered users too
