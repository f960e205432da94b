"""The exporter's console script in a subprocess, as an operator runs it: flags, a clean
environment (no inherited SESSION_EXPORTER_*), stderr to a file the test reads.

    exporter = ExporterCli(tmp_path, ["--access-log"]).start().wait_ready()
    requests.get(exporter.base + "/metrics")
    exporter.stop()                       # SIGTERM; the exit status
    assert "Traceback" not in exporter.log()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from tests.support.redis_server import free_port, wait_until


def exporter_command() -> list[str]:
    """The installed console script, exactly what a user types."""
    script = Path(sys.executable).with_name("session-metrics-exporter")
    assert script.exists(), "the console script is not installed: pip install -e ."
    return [str(script)]


class ExporterCli:
    def __init__(
        self,
        workdir: Path,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        name: str = "exporter",
        scheme: str = "http",
        wrapper: Sequence[str] = (),
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.args = ["--listen", f"127.0.0.1:{self.port}", *args]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
        self.env.update(env or {})
        self.wrapper = list(wrapper)
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ExporterCli:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*self.wrapper, *exporter_command(), *self.args],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=self.workdir,
                preexec_fn=self.preexec_fn,
            )
        return self

    def wait_ready(self, timeout: float = 30, **kwargs: Any) -> ExporterCli:
        """Until `/-/ready` answers 200 (fails at once, with the log, if the process exits)."""
        assert self.process is not None

        def ready_or_gone() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                return True
            return self.get("/-/ready", timeout=1, **kwargs).status_code == 200

        wait_until(ready_or_gone, timeout=timeout, interval=0.05)
        assert self.process.poll() is None, f"the exporter exited:\n{self.log()}"
        return self

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return requests.get(self.base + path, **kwargs)

    def wait(self, timeout: float = 30) -> int:
        """The exit status of a process that stops by itself (a failed start)."""
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 15) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")
