"""No import circles in exporter/: every import, including type-checking and function-level ones.

Edges between two modules of exporter/sessions/ are left out while that package is rewritten
(redis_store <-> session_index is known there).
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "exporter"
EXEMPT = "exporter.sessions."


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported(node: ast.AST, modules: dict[str, Path]) -> list[str]:
    """Modules an import statement runs: `from pkg import sub` runs sub, `from pkg import x` pkg."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        candidates = (f"{node.module}.{alias.name}" for alias in node.names)
        return [name if name in modules else node.module for name in candidates]
    return []


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in imported(node, modules):
                exempt = name.startswith(EXEMPT) and target.startswith(EXEMPT)
                if target in modules and target != name and not exempt:
                    graph[name].add(target)
    return graph


def test_no_import_circles() -> None:
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as error:
        raise AssertionError(f"import circle: {' -> '.join(error.args[1])}") from None
