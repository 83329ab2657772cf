"""``smart serve`` with a learned cascade: the proxy's router trains it on its early probes,
and ``/metrics`` says while it is pending and when it is frozen."""

from __future__ import annotations

import httpx
import openai
import pytest

from smart_core.proxy.background import serving
from smart_core.proxy.settings import ServeSettings, TaskSettings

pytest.importorskip("sklearn")

REF, MINI = "openai:gpt-4o", "openai:gpt-4o-mini"


def _metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(f'{name}{{task="quiz"}}'))
    return float(line.rsplit(" ", 1)[1])


def test_the_proxy_trains_a_learned_cascade_and_reports_it(tricky_quiz_server, tmp_path):
    step = {"model": MINI, "scorer": "learned:train=15", "threshold": 0.8}
    settings = ServeSettings(
        tasks=[
            TaskSettings(
                name="quiz",
                reference=REF,
                candidates=[MINI],
                epsilon=0.2,
                comparator="choice:A,B",
                cascades=[{"steps": [step]}],
            )
        ],
        store=f"sqlite:///{tmp_path / 'smart.db'}",
        base_urls={"openai": tricky_quiz_server.openai_base_url},
    )
    with serving(settings.build()) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="k")
        root = base_url.rsplit("/v1", 1)[0]

        def ask(i: int):
            kind = "tricky" if i % 3 == 0 else "plain"
            messages = [{"role": "user", "content": f"question {i}: a {kind} one"}]
            return client.chat.completions.create(model="quiz", messages=messages)

        ask(0)
        metrics = httpx.get(f"{root}/metrics").text
        assert _metric(metrics, "smart_learned_pending") == 1.0
        assert _metric(metrics, "smart_learned_training_probes") == 1.0
        for i in range(1, 120):
            ask(i)
        metrics = httpx.get(f"{root}/metrics").text
        assert _metric(metrics, "smart_learned_pending") == 0.0
        assert _metric(metrics, "smart_learned_training_probes") == 0.0
        # The frozen cascade is a route now: probed after its freeze, with a bound of its own.
        frozen = [
            line
            for line in metrics.splitlines()
            if line.startswith("smart_route_lower_bound")
            and 'route="cascade:openai:gpt-4o-mini[learned@' in line
        ]
        assert len(frozen) == 1 and float(frozen[0].rsplit(" ", 1)[1]) > 0.5
