"""The package's layers, and no import circles: every import, including type-checking and
function-level ones, with no exemption.

A module imports only from its own package or from a lower layer:

    core (foundations)
    store (the key-value tiers)
    sessions, upstreams (what is stored and proxied; neither imports the other)
    monitoring (the service, health, reports, events, the composition root)
    web (HTTP)
    app, library, and the package's own entry points (`exporter`, `exporter.__main__`,
    `exporter.aiohttp_session`)
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "exporter"
LAYERS = {
    "exporter.core": 0,
    "exporter.store": 1,
    "exporter.sessions": 2,
    "exporter.upstreams": 2,
    "exporter.monitoring": 3,
    "exporter.web": 4,
    "exporter.app": 5,
    "exporter.library": 5,
}
ENTRY_POINTS = 6  # the modules directly under exporter/: above everything


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
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int:
    return LAYERS.get(package_of(module), ENTRY_POINTS)


def allowed(source: str, target: str) -> bool:
    same_package = package_of(source) == package_of(target) and package_of(source) in LAYERS
    return same_package or layer_of(target) < layer_of(source)


def test_every_package_has_a_layer() -> None:
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert {f"exporter.{name}" for name in packages} == set(LAYERS)


def test_imports_go_down_the_layers_only() -> None:
    wrong = [
        f"{source} -> {target}"
        for source, targets in import_graph().items()
        for target in sorted(targets)
        if not allowed(source, target)
    ]
    assert wrong == []


def test_no_import_circles() -> None:
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as error:
        raise AssertionError(f"import circle: {' -> '.join(error.args[1])}") from None
