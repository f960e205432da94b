"""A wall clock that a test steps for one process, as NTP's step or an operator's `date -s` does:
libfaketime (Debian package `faketime`) preloaded into the process, reading its offset from a
file that `step()` rewrites. Only the wall clock moves (`FAKETIME_DONT_FAKE_MONOTONIC`): a real
step leaves CLOCK_MONOTONIC alone, and asyncio's timers run on it.

libfaketime re-reads the file at most once a second (`FAKETIME_CACHE_DURATION`), so a step takes
effect within a second; `wall_offset()` tells when it has.

Known limit (libfaketime 0.9.10, Debian 12): with DONT_FAKE_MONOTONIC, an absolute
`clock_nanosleep(CLOCK_MONOTONIC)` fails with EINVAL (wolfcw/libfaketime#426), which is what
Python 3.11's `time.sleep()` calls. The exporter never calls it (asyncio waits in epoll), but a
probe that sleeps must busy-wait instead.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.redis_server import missing_dependency

LIBRARY_PATTERNS = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def faketime_library() -> Path | None:
    for pattern in LIBRARY_PATTERNS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    return None


def require_faketime() -> Path:
    library = faketime_library()
    if library is None:
        missing_dependency(
            "libfaketime", "install the Debian package faketime (`make test` does this as root)"
        )
    assert library is not None
    return library


class SteppedClock:
    """The wall clock of the processes started with `env()`, offset by `step(seconds)`."""

    def __init__(self, offset_file: Path) -> None:
        self.library = require_faketime()
        self.offset_file = offset_file
        self.offset = 0.0
        self.step(0)

    def env(self) -> dict[str, str]:
        """What a process needs in its environment to run on this clock."""
        return {
            "LD_PRELOAD": str(self.library),
            "FAKETIME_TIMESTAMP_FILE": str(self.offset_file),
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "DONT_FAKE_MONOTONIC": "1",  # the variable's name before libfaketime 0.9.8
        }

    def step(self, seconds: float) -> None:
        """Set the wall clock to the real one plus `seconds` (negative: back)."""
        self.offset = seconds
        # Written whole and renamed: libfaketime must never read a half-written offset.
        partial = self.offset_file.with_suffix(".tmp")
        partial.write_text(f"{seconds:+.0f}\n")
        os.replace(partial, self.offset_file)


PROBE = """
import sys, time
wall, mono = time.time(), time.monotonic()
offset_file = sys.argv[1]
with open(offset_file, "w") as f:
    f.write(sys.argv[2] + "\\n")
deadline = mono + 3
while time.monotonic() < deadline and abs(time.time() - wall) < 60:
    pass  # busy-wait: time.sleep() fails under DONT_FAKE_MONOTONIC (see the module docstring)
print(time.time() - wall, time.monotonic() - mono)
"""


def probe_step(clock: SteppedClock, seconds: float) -> tuple[float, float]:
    """Run a Python process on `clock`, step it by `seconds` from inside, and return how far
    its `time.time()` and `time.monotonic()` moved meanwhile."""
    env = {**os.environ, **clock.env()}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(clock.offset_file), f"{seconds:+.0f}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    wall, mono = (float(part) for part in result.stdout.split())
    return wall, mono


def wall_offset(date_header: str) -> float:
    """How far a server's HTTP `Date` header is from our wall clock, in seconds."""
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(date_header).timestamp() - time.time()
