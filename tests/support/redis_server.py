"""A real redis-server for tests, on a free loopback port, that a test can kill, hang and restart.

Uses the local `redis-server` binary when present (fast, full process control); otherwise a
testcontainers Redis when a Docker engine answers. With neither, tests fail under CI and skip
locally, saying what to install.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

if TYPE_CHECKING:
    from docker.models.containers import Container
    from testcontainers.redis import RedisContainer

IN_CI = bool(os.environ.get("CI"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_dependency(what: str, how: str) -> None:
    """Fail loudly under CI, skip locally; either way say what is missing and how to get it."""
    message = f"{what} is not available: {how}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        try:
            if predicate():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


class RedisServer:
    """One redis-server process. `kill()` is SIGKILL, `pause()`/`resume()` are SIGSTOP/SIGCONT."""

    def __init__(
        self, port: int | None = None, extra_args: tuple[str, ...] = (), workdir: Path | None = None
    ) -> None:
        self.binary = shutil.which("redis-server")
        self.port = port or free_port()
        self.extra_args = extra_args
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="redis-test-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self) -> RedisServer:
        assert self.binary, "redis-server binary missing"
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--protected-mode",
            "no",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.client().ping())
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def ensure_running(self) -> None:
        """Undo what an earlier test may have left: a paused or killed server."""
        if self.process is not None and self.process.poll() is None:
            self.resume()
        else:
            self.start()

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


def start_redis(extra_args: tuple[str, ...] = ()) -> RedisServer:
    """Start a local redis-server, or fail/skip with the install command."""
    if shutil.which("redis-server") is None:
        missing_dependency(
            "redis-server",
            "install the Debian package redis-server (`make test` does this as root)",
        )
    return RedisServer(extra_args=extra_args).start()


class ContainerRedisServer(RedisServer):
    """The same contract on a testcontainers Redis, for machines with Docker but no redis-server."""

    def __init__(self) -> None:
        super().__init__(port=0)
        self.container: RedisContainer | None = None

    def start(self) -> ContainerRedisServer:
        from testcontainers.redis import RedisContainer

        if self.container is None:
            self.container = RedisContainer("redis:7-alpine")
            self.container.start()
        else:
            self.container.get_wrapped_container().start()
        self.port = int(self.container.get_exposed_port(6379))
        wait_until(lambda: self.client().ping())
        return self

    def _docker(self) -> Container:
        """The Docker container under the Redis one (it exists once `start` has run)."""
        assert self.container is not None, "start() first"
        return self.container.get_wrapped_container()

    def ensure_running(self) -> None:
        container = self._docker()
        container.reload()
        if container.status == "paused":
            self.resume()
        elif container.status != "running":
            self.start()

    def kill(self) -> None:
        self._docker().kill()

    def pause(self) -> None:
        self._docker().pause()

    def resume(self) -> None:
        self._docker().unpause()

    def stop(self) -> None:
        if self.container is not None:
            self.container.stop()


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def start_any_redis() -> RedisServer:
    """Local binary first (full process control, fastest), then a container, else fail or skip."""
    if shutil.which("redis-server"):
        return RedisServer().start()
    if docker_available():
        return ContainerRedisServer().start()
    missing_dependency(
        "redis-server", "install the Debian package redis-server (`make test` does this as root)"
    )
    raise AssertionError("unreachable")
