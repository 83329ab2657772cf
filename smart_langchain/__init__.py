"""LangChain adapter for SMART: :class:`SmartChatModel`, a drop-in chat model that routes each
call to the cheapest model allowed by SMART's guarantee (at most ``epsilon`` of answers differ
from the reference model's, with confidence ``1 - delta``).
"""

from ._chat_model import SmartChatModel
from ._convert import MessageMatch, answer_from_message
from ._usage import EstimatedUsageWarning

__all__ = ["EstimatedUsageWarning", "MessageMatch", "SmartChatModel", "answer_from_message"]
