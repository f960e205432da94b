"""The optional mypyc build of the hot synchronous modules: `make speedups`, `make clean-speedups`.

Compiled, a memory-tier session read costs ≈ 0.65 µs instead of ≈ 1.0 µs (`python -m bench
store` prints both when the build is present). The pure-Python modules stay the reference: the
default install, the Docker image and CI never compile anything, and an extension module shadows
its `.py` only where `make speedups` put it beside it.

Only synchronous modules are listed. Coroutines compiled by mypyc have open crash bugs when an
exception or a cancellation passes through them (python/mypy#12867); compiling tiered_store.py
crashed the interpreter in tests/integration/sessions/test_store_hung.py. So the hottest paths are
kept out of coroutine modules: the memory-hit read (`store.memory_reads` and
`sessions.held_sessions`, which `SessionManager.get_held` and the HTTP GET route call without a
coroutine) and the HTTP request metrics (`web.request_metrics`).

    >>> "exporter.store.memory_store" in MODULES
    True
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

MODULES = (
    "exporter.core.fast_metrics",
    "exporter.core.window",
    "exporter.core.instrumentation",
    "exporter.core.access_stats",
    "exporter.store.memory_store",
    "exporter.store.memory_reads",
    "exporter.sessions.held_sessions",
    "exporter.sessions.session",
    "exporter.web.request_metrics",
)
# mypyc's group name: its runtime library (exporter/_speedups__mypyc*.so) is then a module of the
# package, found wherever the package is (an editable install does not put the checkout itself on
# sys.path).
GROUP = "exporter._speedups"
ROOT = Path(__file__).resolve().parents[2]


def source(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def built(module: str) -> list[Path]:
    """The extension files that `import module` would load instead of its source."""
    path = ROOT.joinpath(*module.split("."))
    return [
        candidate
        for suffix in EXTENSION_SUFFIXES
        if (candidate := path.with_name(path.name + suffix)).exists()
    ]


def compiled() -> list[str]:
    """The listed modules that import as extensions here (empty: pure Python)."""
    return [module for module in MODULES if built(module)]


def stale() -> list[str]:
    """Compiled modules whose source changed since: they would run the old code."""
    return [
        module
        for module in compiled()
        if any(path.stat().st_mtime < source(module).stat().st_mtime for path in built(module))
    ]
