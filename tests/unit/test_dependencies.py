"""Dependencies come from the committed lock: a drifted pyproject.toml stops every install with a
message saying what to do, and the bounds library users see stay honest."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support.redis_server import missing_dependency

ROOT = Path(__file__).parents[2]
UV_TOOL_VENV = ROOT / ".cache" / "uv"
DISAGREE = "pyproject.toml and uv.lock disagree"


def deps(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not (UV_TOOL_VENV / "bin" / "uv").exists():
        missing_dependency("uv", "run the suite through `make test`, which installs it")
    return subprocess.run(
        ["scripts/deps.sh", *args],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "UV_TOOL_VENV": str(UV_TOOL_VENV), "VENV": ".venv"},
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What the lock check reads, copied: pyproject.toml, uv.lock and the scripts."""
    for name in ("pyproject.toml", "uv.lock", "README.md", "exporter/core/build.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    return tmp_path


def test_the_committed_lock_satisfies_pyproject() -> None:
    done = deps(ROOT, "check")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"orjson>=3.9"', '"orjson>=3.9", "attrs>=23"'),  # a dependency added
        ('"redis[hiredis]>=8.2"', '"redis[hiredis]>=99"'),  # a bound the lock breaks
        ('"uvloop>=0.19"', '"uvloop>=0.19", "rich"'),  # an extra changed
    ],
    ids=["added", "bound", "extra"],
)
def test_a_drifted_pyproject_stops_the_install_with_what_to_do(
    checkout: Path, old: str, new: str
) -> None:
    pyproject = checkout / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    assert old in text
    pyproject.write_text(text.replace(old, new, 1), encoding="utf-8")

    done = deps(checkout, "sync", "--extra", "speed")  # what every make target runs first
    assert done.returncode == 1
    assert DISAGREE in done.stderr and "make lock" in done.stderr
    assert not (checkout / ".venv").exists()  # nothing was installed


def test_runtime_dependencies_have_lower_bounds_only() -> None:
    """Library users resolve these themselves: a lower bound the suite has run on, no pins."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = [
        *project["dependencies"],
        *project["optional-dependencies"]["speed"],
        *project["optional-dependencies"]["aiohttp-session"],
    ]
    for line in runtime:
        requirement = Requirement(line)
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">="}, f"{line}: a lower bound only"
