"""Headless Chromium (Debian's `chromium`) opening one page, for tests of real browser behaviour.

The page reports what it sees by POSTing to its own server, so no DevTools protocol is needed:

    with HeadlessChromium(url, tmp_path):
        ...wait for the page's reports...
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from types import TracebackType

from tests.support.redis_server import missing_dependency

FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root, where the sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
)


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    missing_dependency("chromium", "install the Debian package chromium (`make system-deps`)")
    raise AssertionError("unreachable")


class HeadlessChromium:
    """Chromium on `url` with a fresh profile, in its own process group (its helpers included)."""

    def __init__(self, url: str, workdir: Path, extra_flags: tuple[str, ...] = ()) -> None:
        self.url = url
        self.extra_flags = extra_flags
        self.profile = workdir / "chromium-profile"
        self.log = workdir / "chromium.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HeadlessChromium:
        binary = chromium_binary()
        self.profile.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, *FLAGS, *self.extra_flags, f"--user-data-dir={self.profile}", self.url],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own group: the browser's helpers
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)
