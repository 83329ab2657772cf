"""SMART: cut LLM token bills with a stated quality guarantee.

Name a reference model, a few cheaper candidates and a target -- "at most ``epsilon`` of answers
may differ from the reference's, with confidence ``1 - delta``" -- and SMART profiles the
candidates on live traffic, mixes them by linear programming so the target holds, and keeps
auditing. This package is the framework-free engine; ``smart_langchain`` and
``smart_llamaindex`` adapt it to those frameworks.
"""

from .engine.drivers import Calls, Streamed
from .engine.ledger import Ledger, RouteStats
from .engine.router import Endpoint, SmartRouter
from .engine.routes import ModelRoute, Route, RouteTable
from .engine.ticket import Routed, Ticket
from .errors import ConfigError, ReplayFormatError, SmartError, StoreError
from .jobs.batch_run import BatchResult, BatchRun, run_batch
from .policy import Decision
from .policy.certificate import Certificate
from .providers.sdk import (
    AnthropicProvider,
    OpenAIProvider,
    ProviderError,
    ProviderSpec,
    make_provider,
    parse_model_spec,
)
from .reporting.report import TaskReport, store_report
from .stores import MemoryStore, SqliteStore, Store, open_store
from .task.answer import Answer
from .task.comparators import (
    CallableMatch,
    ChoiceMatch,
    Comparator,
    ExactMatch,
    JsonMatch,
    NumberMatch,
    RegexMatch,
    ToolCallMatch,
    parse_comparator,
)
from .task.config import ModelSpec, SmartConfig
from .task.pricing import DEFAULT_PRICES, Price, PriceTable, UnknownPriceError
from .task.usage import Usage

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PRICES",
    "Answer",
    "AnthropicProvider",
    "BatchResult",
    "BatchRun",
    "CallableMatch",
    "Calls",
    "Certificate",
    "ChoiceMatch",
    "Comparator",
    "ConfigError",
    "Decision",
    "Endpoint",
    "ExactMatch",
    "JsonMatch",
    "Ledger",
    "MemoryStore",
    "ModelRoute",
    "ModelSpec",
    "NumberMatch",
    "OpenAIProvider",
    "Price",
    "PriceTable",
    "ProviderError",
    "ProviderSpec",
    "RegexMatch",
    "ReplayFormatError",
    "Route",
    "RouteStats",
    "RouteTable",
    "Routed",
    "SmartConfig",
    "SmartError",
    "SmartRouter",
    "SqliteStore",
    "Store",
    "StoreError",
    "Streamed",
    "TaskReport",
    "Ticket",
    "ToolCallMatch",
    "UnknownPriceError",
    "Usage",
    "make_provider",
    "open_store",
    "parse_comparator",
    "parse_model_spec",
    "run_batch",
    "store_report",
]
