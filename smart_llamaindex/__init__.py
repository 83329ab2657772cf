"""LlamaIndex adapter for SMART: ``SmartLLM``, a drop-in ``FunctionCallingLLM`` for
``Settings.llm``, query engines and agents that answers from cheaper models while at most a share
``epsilon`` of answers differ from the reference model's, with confidence ``1 - delta``.

See docs/llamaindex.md.
"""

from ._convert import answer_from_response, usage_from_response
from ._llm import SMART_KEY, SmartLLM

__all__ = ["SMART_KEY", "SmartLLM", "answer_from_response", "usage_from_response"]
