"""Lock smart_core's public surface and keep the engine free of framework imports."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import smart_core

EXPECTED_ALL = [
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

PACKAGE_DIR = Path(smart_core.__file__).parent


def _modules() -> list[str]:
    return sorted(
        info.name for info in pkgutil.walk_packages(smart_core.__path__, prefix="smart_core.")
    )


def test_public_names_are_exactly_the_expected_ones():
    """Adding or removing a public name is an API change: update EXPECTED_ALL deliberately."""
    assert sorted(smart_core.__all__) == sorted(EXPECTED_ALL)
    assert len(set(smart_core.__all__)) == len(smart_core.__all__)


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_public_name_is_importable(name):
    """``from smart_core import <name>`` works for every name in __all__."""
    namespace: dict = {}
    exec(f"from smart_core import {name}", namespace)
    assert namespace[name] is getattr(smart_core, name)


def test_star_import_gives_exactly_all():
    namespace: dict = {}
    exec("from smart_core import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(EXPECTED_ALL)


def test_every_module_declares_all():
    """Every module of the package (private ones included) states its exports in __all__, and
    every name listed there exists."""
    modules = _modules()
    assert "smart_core.policy.online" in modules and "smart_core.stores._sqlite" in modules
    missing = []
    for name in modules:
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        if not isinstance(exported, list | tuple):
            missing.append(name)
            continue
        for attr in exported:
            assert hasattr(module, attr), f"{name}.__all__ lists {attr!r}, which is not defined"
    assert missing == []


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_engine_never_imports_langchain_or_llama_index():
    """The core must stay framework-free: no source file imports langchain or llama_index
    (including lazy imports inside functions)."""
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(files) > 10
    offenders = []
    for path in files:
        for module in _imported_modules(path):
            root = module.split(".")[0]
            if root.startswith(("langchain", "llama_index")):
                offenders.append(f"{path.relative_to(PACKAGE_DIR)}: {module}")
        # Dynamic imports by string would dodge the AST check; catch those too.
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if "import_module(" in stripped and (
                "langchain" in stripped or "llama_index" in stripped
            ):
                offenders.append(f"{path.relative_to(PACKAGE_DIR)}: {stripped}")
    assert offenders == []
