"""The pinned npm packages of tests/npm (installed by `make test` into .cache/npm).

Where they are missing, tests that need them skip with a message saying how to install them;
under CI (`CI` set) they fail instead, so a broken install step cannot pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NPM_DIR = Path(os.environ.get("NPM_DIR", ROOT / ".cache" / "npm"))
MODULES = NPM_DIR / "node_modules"
FIGMA_SPEC = MODULES / "@figma" / "rest-api-spec" / "openapi" / "openapi.yaml"
SERVER_EVERYTHING = MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
INSTALL_HINT = "run `make npm-deps` (needs Debian's nodejs and npm)"


def unavailable(reason: str) -> None:
    """Skip locally, fail under CI."""
    message = f"{reason}; {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: the suite must not skip this)", pytrace=False)
    pytest.skip(message)


def require(path: Path) -> Path:
    if not path.exists():
        unavailable(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} is missing")
    return path


def node() -> str:
    found = shutil.which("node")
    if found is None:
        unavailable("node is not installed")
        raise AssertionError("unreachable")
    return found
