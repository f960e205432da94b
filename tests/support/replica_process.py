"""An exporter replica as a real process (the console script), on a fixed loopback port, that a
test can SIGKILL and start again on the same port, as an orchestrator would restart it.

A killed process is what "replica down" means to Prometheus: its scrapes fail (`up == 0`) and the
requests a load balancer sends it are refused at connect.

    replica = ReplicaProcess("a", {"redis_url": redis.url}, workdir).start()
    replica.url            # http://127.0.0.1:PORT
    replica.kill()         # SIGKILL
    replica.start()        # same port, same journal directory
    replica.stop()         # SIGTERM, graceful
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.support.redis_server import free_port


def console_script() -> str:
    """The installed console script, exactly what a user runs."""
    script = Path(sys.executable).with_name("session-metrics-exporter")
    assert script.exists(), "the console script is not installed: pip install -e ."
    return str(script)


class ReplicaProcess:
    """One replica; `settings` are exporter settings (`redis_url`, ...), passed as environment."""

    def __init__(self, name: str, settings: Mapping[str, object], workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / "exporter.log"
        self.settings = {
            "listen": f"127.0.0.1:{self.port}",
            "journal_dir": str(self.workdir / "journal"),
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
        env.update({f"SESSION_EXPORTER_{k.upper()}": str(v) for k, v in self.settings.items()})
        return env

    def start(self, timeout: float = 60.0) -> ReplicaProcess:
        """Start it and wait until it answers /-/ready (its own answer: the process is alive).
        Seconds alone; on a machine four test suites share, a minute is not unheard of."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [console_script()], env=self.environment(), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if not self.running:
                raise RuntimeError(f"replica {self.name} exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"replica {self.name} not ready in {timeout}s")
            time.sleep(0.05)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: gone at once, its connections reset, its port closed."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
