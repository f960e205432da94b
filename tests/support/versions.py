"""What a run ran on: the system programs the suite starts, and the locked Python packages that
matter most. Printed at the top of every run, so a failing run says what it ran against."""

from __future__ import annotations

import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version

# program -> the flag that prints its version (first line kept)
PROGRAMS = {
    "redis-server": "--version",
    "prometheus": "--version",
    "promtool": "--version",
    "chromium": "--version",
    "node": "--version",
    "npm": "--version",
    "faketime": "--version",  # libfaketime: the torture tests step a replica's wall clock
}
PACKAGES = ("redis", "hiredis", "aiohttp", "prometheus-client", "mcp", "uvloop")


def program_version(name: str, flag: str) -> str:
    path = shutil.which(name)
    if path is None:
        return "not installed"
    try:
        done = subprocess.run([path, flag], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({type(exc).__name__})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else f"unknown (exit {done.returncode})"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def report_lines() -> list[str]:
    programs = ", ".join(
        f"{name}: {program_version(name, flag)}" for name, flag in PROGRAMS.items()
    )
    packages = ", ".join(f"{name} {package_version(name)}" for name in PACKAGES)
    return [f"system: {programs}", f"python packages: {packages}"]
