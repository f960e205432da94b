"""What build is running: the version, and the git revision when it is known.

The revision comes from `SESSION_EXPORTER_REVISION` (set by the image build, which has no git
checkout), else from `git rev-parse` when the package runs from a checkout. Read once, never
fails: an unknown revision is "unknown".

Besides `__main__`, the one place that reads the environment: the revision describes the build,
not a setting, and `build_info` needs it wherever an app is created.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

# Here, in a module that imports nothing of ours, so that reading it never runs the package's
# __init__ (which opens the whole session layer): `exporter.__version__` re-exports it.
__version__ = "0.1.0"
REVISION_ENV = "SESSION_EXPORTER_REVISION"
UNKNOWN = "unknown"
_CHECKOUT = Path(__file__).resolve().parent.parent


@functools.cache
def revision() -> str:
    from_env = os.environ.get(REVISION_ENV, "").strip()
    if from_env:
        return from_env[:40]
    return _git_revision() or UNKNOWN


def _git_revision() -> str | None:
    git = shutil.which("git")
    if git is None or not (_CHECKOUT / ".git").exists():
        return None
    try:
        result = subprocess.run(
            [git, "rev-parse", "--short=12", "HEAD"],
            cwd=_CHECKOUT,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = result.stdout.strip()
    return text if result.returncode == 0 and text else None


def version_line() -> str:
    return f"{__version__} (revision {revision()})"
