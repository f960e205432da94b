"""A real `session-metrics-exporter` process on a free loopback port, as an operator runs it:
the installed console script, its settings as flags, its output in a log file. A test can
SIGKILL it and start it again on the same journal directory, or run it under libfaketime
(`tests.support.faketime`) to step its wall clock.

Each process leads its own process group, so `kill()` and `stop()` reach anything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.redis_server import free_port


def exporter_script() -> Path:
    """The installed console script, exactly what a user types."""
    script = Path(sys.executable).with_name("session-metrics-exporter")
    assert script.exists(), "the console script is not installed: pip install -e ."
    return script


class ExporterProcess:
    """One exporter; `flags` are its settings by name (`redis_url` → `--redis-url`)."""

    def __init__(
        self,
        name: str,
        flags: dict[str, str],
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.flags = flags
        self.log_path = log_path
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        args = [str(exporter_script()), "--listen", f"127.0.0.1:{self.port}"]
        for name, value in self.flags.items():
            args += ["--" + name.replace("_", "-"), value]
        return args

    def start(self) -> None:
        """Start it (again); readiness is the caller's to wait for (`GET /-/ready`)."""
        assert not self.running, f"{self.name} is already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
        env.update(self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a node failure does: no shutdown code runs."""
        self._signal(signal.SIGKILL)
        self._reap(5)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, a graceful stop; SIGKILL if it takes longer than `timeout`. The exit code."""
        if not self.running:
            return self.process.returncode if self.process else None
        self._signal(signal.SIGTERM)
        if not self._reap(timeout):
            self.kill()
        assert self.process is not None
        return self.process.returncode

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _signal(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.killpg(self.process.pid, signum)

    def _reap(self, timeout: float) -> bool:
        assert self.process is not None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
