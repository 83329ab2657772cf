"""Testing utilities: a local OpenAI- and Anthropic-compatible server with scripted models.

``FakeLLMServer`` speaks the OpenAI Chat Completions and Anthropic Messages APIs over real HTTP on
127.0.0.1, so the official SDKs and every framework client built on them (LangChain's
``ChatOpenAI`` / ``ChatAnthropic``, LlamaIndex's ``OpenAI`` / ``Anthropic``) run unchanged. Each
model name maps to a :class:`Behaviour`: answers from a replay file or a function of the prompt,
latency, and faults (429, 500, timeouts, truncated streams) on a deterministic schedule. Unknown
names get :func:`echo`, which answers in whatever shape the client asked for.

The pytest fixture ``fake_llm_server`` lives in ``smart_core.testing.pytest_plugin``; the
``smart fake-server`` command serves from the shell. See docs/testing.md.
"""

from ._behaviour import Behaviour, Responder
from ._echo import echo, instance_from_schema
from ._faults import Fault, FaultKind
from ._forced_route import force_route
from ._prompt import Message, Prompt, Tool, ToolCall
from ._replay import ReplayResponder, replay
from ._reply import BadRequest, Reply, count_tokens
from ._server import FakeLLMServer, RequestRecord

__all__ = [
    "BadRequest",
    "Behaviour",
    "FakeLLMServer",
    "Fault",
    "FaultKind",
    "Message",
    "Prompt",
    "ReplayResponder",
    "Reply",
    "RequestRecord",
    "Responder",
    "Tool",
    "ToolCall",
    "count_tokens",
    "echo",
    "force_route",
    "instance_from_schema",
    "replay",
]
