"""``smart_core`` imports only downward through its layers, so that each layer can be read, tested
and reused without the ones above it.

From the bottom up (a layer may import any layer below it, never one above)::

    errors      the exceptions every layer raises
    task        what a task is: answers, comparators, prices, usage, configuration
    stats       confidence sequences, drift detection, the mix solver (pure statistics)
    policy      which route may answer, from the statistics; no I/O
    stores      where the policy's state is kept (memory, SQLite)
    cache       the answer cache: request keys, scopes, entries kept in a store
    providers   the model SDKs behind a common call
    engine      the router that serves requests: policy + store + providers
    reporting   what a store recorded, as reports and charts
    jobs        whole runs built on the engine: batch runs, replay, demo, benchmarks
    proxy       ``smart serve``: the engine behind an OpenAI-compatible HTTP API
    cli         the ``smart`` command; nothing imports it

``testing`` (the fake LLM server and its pytest plugin) sits beside the stack: it may import any
layer but ``cli``, and only ``cli`` and ``jobs`` (the demo serves its simulated models from it)
may import it, so that the library never needs the fake server to run. The package root
(``smart_core/__init__.py``) re-exports the public names of every layer but ``cli`` and
``testing``.

Every import counts: at module level, inside functions (the CLI's lazy imports), and under
``TYPE_CHECKING``. ``python tests/core/test_layers.py`` prints the measured graph.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

import smart_core

PACKAGE = Path(smart_core.__file__).parent
ROOT = "__init__"  # the package root's own module, a facade over the layers

#: Bottom first: a layer may import the layers before it.
STACK = [
    "errors",
    "task",
    "stats",
    "policy",
    "stores",
    "cache",
    "providers",
    "engine",
    "reporting",
    "jobs",
    "proxy",
    "cli",
]
TESTING = "testing"
#: The only layers that may import ``testing``.
TESTING_USERS = {"cli", "jobs"}

#: Upward imports that exist today, as (importing layer, imported module), each with the change
#: that removes it. The test fails once one of them is gone, so that the exemption goes too.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> list[str]:
    parts = ["smart_core", *path.relative_to(PACKAGE).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _layer_of(module: list[str]) -> str:
    """``smart_core.policy.keys`` -> ``policy``; ``smart_core.errors`` -> ``errors``."""
    return module[1] if len(module) > 1 else ROOT


def _imported_modules(path: Path) -> list[tuple[int, list[str]]]:
    """Every ``smart_core`` module ``path`` imports, with the line, relative imports resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = base + (node.module.split(".") if node.module else [])
            if len(target) > 1:
                found.append((node.lineno, target))
            else:  # `from .. import errors`, `from smart_core import jobs`: the names are layers
                found += [(node.lineno, [*target, alias.name]) for alias in node.names]
    return [(line, name) for line, name in found if name[0] == "smart_core"]


@cache  # parsed once per session: every parametrised case reads the same graph
def import_graph() -> dict[tuple[str, str], list[tuple[str, str]]]:
    """``(importing layer, imported layer) -> [("file:line", "imported.module"), ...]``."""
    graph: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _layer_of(_module_name(path))
        for line, target in _imported_modules(path):
            layer = _layer_of(target)
            if layer != source:
                where = f"{path.relative_to(PACKAGE.parent).as_posix()}:{line}"
                graph[(source, layer)].append((where, ".".join(target)))
    return dict(graph)


def allowed(source: str, target: str) -> bool:
    """Whether layer ``source`` may import layer ``target``."""
    if target == "cli" or target == ROOT:
        return False  # nothing imports the command, nor the facade from inside the package
    if target == TESTING:
        return source in TESTING_USERS
    if source in (TESTING, ROOT):
        return True
    return STACK.index(target) < STACK.index(source)


def test_every_module_belongs_to_a_known_layer():
    layers = {_layer_of(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert layers <= {*STACK, TESTING, ROOT}, layers - {*STACK, TESTING, ROOT}


def test_the_graph_sees_lazy_relative_and_type_checking_imports():
    """The walk finds imports the layer rule must not miss: inside functions, relative ones
    with ``..``, and those under ``TYPE_CHECKING``; a walk that missed them would pass."""
    graph = import_graph()
    lazy = graph[("cli", "jobs")]  # the CLI imports its jobs inside the commands only
    assert any(where.startswith("smart_core/cli/") for where, _ in lazy)
    assert ("cli", "engine") in graph  # run_console.py: under TYPE_CHECKING only
    assert ("testing", "errors") in graph  # `from ..errors import ...`


@pytest.mark.parametrize(
    ("source", "target"), sorted(import_graph()), ids=lambda layer: layer
)  # one case per pair of layers, so a failure names the pair
def test_imports_go_only_downward(source, target):
    places = import_graph()[(source, target)]
    if allowed(source, target):
        return
    unexplained = [(w, m) for w, m in places if (source, m) not in KNOWN_VIOLATIONS]
    assert not unexplained, f"{source} must not import {target}: {unexplained}"


def test_known_violations_still_exist():
    """An exemption outlives its import only until this test fails: then delete it."""
    graph = import_graph()
    present = {(source, module) for (source, _), places in graph.items() for _, module in places}
    assert present >= KNOWN_VIOLATIONS, KNOWN_VIOLATIONS - present


def test_the_rule_rejects_upward_imports():
    """The rule itself: a few imports that must be refused, so a lax ``allowed`` fails here."""
    assert not allowed("stats", "policy")
    assert not allowed("policy", "engine") and not allowed("policy", "stores")
    assert not allowed("engine", "jobs") and not allowed("engine", "reporting")
    assert not allowed("reporting", "jobs")
    assert not allowed("testing", "cli") and not allowed("jobs", "cli")
    assert not allowed("engine", "testing") and not allowed(ROOT, "testing")
    assert allowed("cli", "testing") and allowed("testing", "jobs")


if __name__ == "__main__":
    for (source, target), places in sorted(import_graph().items()):
        shown = places[:1] if allowed(source, target) else [*places, ("<-- upward", "")]
        print(f"{source:>10} -> {target:<10} {len(places):3d} ", *(" ".join(p) for p in shown))
