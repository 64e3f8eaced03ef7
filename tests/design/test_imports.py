"""The packages' import graph: no cycle (``TYPE_CHECKING`` imports included), pure protocol.

Read from the source with :mod:`ast`, so an import that only the type checker
follows counts as much as one that runs: a cycle of either kind means two
modules that cannot be read, or changed, one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("client_sdk", "reference_server")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports, wherever the import statement stands."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # ``from . import x`` may name a submodule or an attribute.
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # The deepest project module the target names (a package imports its __init__).
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, if there is any (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodules is not a cycle
            # of the design: the submodule never needs the package's names.
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (found := visit(node)) is not None:
            return found
    return None


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "client_sdk.protocol.rooms" in graph["client_sdk.protocol.envelope"]
    assert "reference_server.hub" in graph["reference_server.app"]


def test_no_import_cycle_type_checking_included() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("module", sorted(m for m in _modules() if ".protocol" in m))
def test_the_protocol_imports_nothing_else_of_the_project(module: str) -> None:
    graph = _graph()
    outside = {m for m in graph[module] if not m.startswith("client_sdk.protocol")}
    assert not outside, f"{module} imports {sorted(outside)}"


def test_the_protocol_imports_no_server_and_the_server_no_private_sdk_module() -> None:
    graph = _graph()
    for module, imported in graph.items():
        if module.startswith("reference_server"):
            sdk = {m for m in imported if m.startswith("client_sdk")}
            private = {m for m in sdk if any(p.startswith("_") for p in m.split(".")[1:])}
            assert not private, f"{module} imports private SDK modules {sorted(private)}"
