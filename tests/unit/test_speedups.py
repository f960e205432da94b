"""The optional mypyc build (`make speedups`): its modules stay compilable without a C compiler
here, since mypyc's translation to C needs none; CI tests the pure-Python modules."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.app import speedups


def test_every_listed_module_is_a_synchronous_source_file() -> None:
    # Coroutines compiled by mypyc crash on some exception and cancellation paths
    # (python/mypy#12867): a hot module that gains one must leave the list.
    for module in speedups.MODULES:
        tree = ast.parse(speedups.source(module).read_text(encoding="utf-8"))
        coroutines = [n.name for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef)]
        assert coroutines == [], f"{module} defines coroutines {coroutines}"


# About 30 s of one CPU on a quiet machine; `make test` runs it beside another worker, niced so
# that the timing-bound drills there keep their CPU: a generous deadline, not a timing assertion.
@pytest.mark.slow
@pytest.mark.timeout(330)
def test_mypyc_translates_the_listed_modules_to_c(tmp_path: Path) -> None:
    paths = [str(speedups.source(module).relative_to(speedups.ROOT)) for module in speedups.MODULES]
    # What `make speedups` runs before the compiler: type-check, translate, write the C files.
    script = (
        "import sys; from mypyc.build import mypycify; "
        "mypycify(sys.argv[3:], group_name=sys.argv[1], target_dir=sys.argv[2])"
    )
    # A mypy cache of its own: `make test` may run tests/test_lint.py's mypy at the same time,
    # and two mypy processes writing one SQLite cache can fail with "database is locked".
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "mypy-cache")}
    done = subprocess.run(
        ["nice", "-n", "10", sys.executable, "-c", script, speedups.GROUP, str(tmp_path), *paths],
        cwd=speedups.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    written = {path.name for path in tmp_path.rglob("*.c")}
    assert {module.rpartition(".")[2] + ".c" for module in speedups.MODULES} <= written
