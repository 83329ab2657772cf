"""Which embedders ``smart bench qqp`` measures: the offline default, and embedding models
offered by the framework adapters, reached over the network on the local fake server.

smart_core never imports a framework. An adapter offers an embedder factory through the
entry-point group :data:`EMBEDDER_GROUP` (the ``smart-llm`` distribution registers
``langchain`` -> ``smart_langchain._bench_embedder:openai_embeddings``: LangChain's
``OpenAIEmbeddings`` wrapped as ``SmartChatModel(embeddings=...)`` wraps it), or a user names one
as ``module:factory``. A factory is called as ``factory(base_url=..., dimensions=...)`` and
returns an :class:`~smart_core.cache.Embedder`; the bench starts the fake server itself and
passes its OpenAI base URL, so no key and no setup are needed.

The fake server's ``/v1/embeddings`` vectors *are* the offline embedder's (hashed character
n-grams, smart_core.testing._embeddings), so the thresholds chosen and the hit rates must come out
the same: what a network embedder's run measures is that the real class, its batching, the
dimensions and the network path work at scale, and what they cost in time.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from typing import Any

from ..cache.embedding import Embedder, HashedNgramEmbedder
from ..errors import ConfigError

__all__ = ["EMBEDDER_GROUP", "OFFLINE", "open_embedders"]

#: Entry-point group through which adapters offer ``smart bench qqp`` an embedder factory.
EMBEDDER_GROUP = "smart.bench_embedders"
#: The offline default's name.
OFFLINE = "offline"


def _offered() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=EMBEDDER_GROUP)}


def _factory(spec: str) -> Any:
    """The factory ``spec`` names: an offered name, or ``module:factory``."""
    offered = _offered()
    if spec in offered:
        try:
            return offered[spec].load()
        except ImportError as exc:
            raise ConfigError(
                f"--embedder {spec}: its adapter is not installed (pip install "
                f"'smart-llm[{spec}]'): {exc}"
            ) from None
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        names = ", ".join([OFFLINE, *sorted(offered)])
        raise ConfigError(
            f"--embedder {spec!r}: choose among {names}, or name a factory as module:function "
            "(called with base_url= and dimensions=, returning an object with embed(texts))"
        )
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--embedder {spec}: cannot load {name} from {module} ({exc})") from None


@contextlib.contextmanager
def open_embedders(specs: Sequence[str], dimensions: int) -> Iterator[dict[str, Embedder]]:
    """The embedders ``specs`` name, by name; network ones talk to a local fake server started
    here (and stopped on exit). Every spec is resolved before the server starts."""
    factories = {s: _factory(s) for s in specs if s != OFFLINE}
    embedders: dict[str, Embedder] = {}
    with contextlib.ExitStack() as stack:
        if factories:
            from ..testing import FakeLLMServer

            server = stack.enter_context(FakeLLMServer({}))
            for spec, make in factories.items():
                embedder = make(base_url=server.openai_base_url, dimensions=dimensions)
                if not callable(getattr(embedder, "embed", None)):
                    raise ConfigError(
                        f"--embedder {spec}: its factory returned {type(embedder).__name__}, "
                        "which has no embed(texts) method"
                    )
                embedders[spec] = embedder
        for spec in specs:
            if spec == OFFLINE:
                embedders[spec] = HashedNgramEmbedder(dimensions)
        yield {s: embedders[s] for s in specs}
