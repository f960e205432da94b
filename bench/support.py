"""Shared helpers: timing, medians, a throwaway redis-server, result rows."""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis


@dataclass
class Result:
    """One target: a measured value, its baseline, and whether the ratio meets the target."""

    name: str
    value: float
    baseline: float
    unit: str
    target: str
    ok: bool
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("inf")


def median(values: list[float]) -> float:
    return statistics.median(values)


def in_fresh_interpreter(script: str) -> str:
    """The last line `script` prints, run by a new interpreter: in this one, what earlier
    sections left (memory to reuse, objects to walk) would skew the figure."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()[-1]


async def interleaved(
    candidates: dict[str, Callable[[], Awaitable[object]]],
    rounds: int,
    ops: int,
    before: Callable[[], object] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median µs per call of each candidate, over `rounds` short interleaved runs of `ops` calls:
    short alternating runs see the same machine load, so their ratios hold on a noisy host.
    `before()` runs, untimed, ahead of each run; `clock` is wall time unless told otherwise."""
    runs: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            if before is not None:
                before()
            runs[name].append(await per_op_us(fn, ops, clock))
    return {name: median(values) for name, values in runs.items()}


async def per_op_us(
    fn: Callable[[], Awaitable[object]], ops: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Microseconds per awaited call, over `ops` sequential calls."""
    started = clock()
    for _ in range(ops):
        await fn()
    return (clock() - started) / ops * 1e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """A redis-server on a free loopback port, no persistence, for the duration of the run."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: apt-get install redis-server")
        self.binary = binary
        self.port = free_port()
        self.dirs: list[str] = []
        self.start()

    def start(self) -> None:
        """Start (or, after `kill`, restart empty on the same port)."""
        binary = self.binary
        self.dirs.append(tempfile.mkdtemp(prefix="bench-redis-"))
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dirs[-1],
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL: an outage with no goodbye (nothing persisted, as configured)."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)
