"""The style the project promises is checked like behaviour: ruff and strict mypy pass (mypy over
the package, the tests, the benchmarks and the mixin: pyproject.toml lists them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.redis_server import missing_dependency

ROOT = Path(__file__).parents[1]
SOURCES = ["exporter", "tests", "bench", "grafana", "mixin"]


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name(args[0])
    if not tool.exists() and shutil.which(args[0]) is None:
        missing_dependency(args[0], "run the suite through make test (it installs uv.lock's tools)")
    # Niced: pure CPU work that `make test` runs beside another worker's timing-bound tests.
    command = ["nice", "-n", "10", str(tool) if tool.exists() else args[0], *args[1:]]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.timeout(330)  # the tool's own bound (300 s) first: a cold, niced mypy takes long
@pytest.mark.parametrize(
    "command",
    [("ruff", "check", *SOURCES), ("ruff", "format", "--check", *SOURCES), ("mypy",)],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_tool_passes(command: tuple[str, ...]) -> None:
    result = run_tool(*command)
    assert result.returncode == 0, result.stdout + result.stderr
