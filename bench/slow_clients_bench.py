"""Normal GETs while 2,000 clients send their request heads at 1 byte/s, against idle.

The exporter runs as a process with its default client limits (request head deadline 10 s, the
connection cap derived from its open-files limit): under `ulimit -n 1024`, as in the audit that
found the slow-loris problem (the cap, 768, is reached: about a thousand connections a second are
refused or closed), and with the machine's own limit (the cap is not reached). A second process
(`python -m bench.slow_clients`) keeps 2,000 connections from 20 loopback addresses sending one
byte a second, reconnecting each one the exporter closes, as an attacker would. This process sends
normal GETs (`GET /api/sessions/{id}`, a new connection each, one at a time) and records their
latency and failures.

Phases alternate, idle then flood, three times; the figure is the median over the flood phases of
the p99, against the median of the idle phases' p99 measured in the same run (goal: at most 2x).
"""

from __future__ import annotations

import http.client
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from bench.support import Result, free_port, median

SLOW_CLIENTS = 2000
OPEN_FILES = 1024
GETS_PER_PHASE = 1000
ROUNDS = 3
WARM_UP = 12.0  # seconds: past the 10 s head deadline, so the flood is in its steady state


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


@contextmanager
def exporter(port: int, limited: bool = True) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--listen", f"127.0.0.1:{port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=_limit_open_files if limited else None,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(base + "/-/ready", timeout=0.5).ok:
                        break
                except requests.ConnectionError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"exporter did not start: {log.read().decode()[-2000:]}")
                time.sleep(0.05)
            yield base
        finally:
            process.terminate()
            process.wait(15)


@contextmanager
def flood(port: int) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.slow_clients", str(port), str(SLOW_CLIENTS)],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(WARM_UP)
        yield
    finally:
        process.terminate()
        process.wait(10)


def normal_gets(port: int, path: str, count: int) -> tuple[list[float], int]:
    """Latencies (ms) of `count` GETs, each on a new connection, and how many failed."""
    latencies: list[float] = []
    failures = 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path)
            ok = connection.getresponse().status == 200
            connection.close()
        except OSError:
            ok = False
        if ok:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            failures += 1
    return latencies, failures


def dropped(base: str) -> dict[str, float]:
    """The exporter's count of connections it closed or refused, by reason."""
    text = requests.get(base + "/metrics", timeout=10).text
    pattern = r'http_connections_dropped_total\{reason="(\w+)"\} ([0-9.e+]+)'
    return {reason: float(value) for reason, value in re.findall(pattern, text)}


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("inf")


def run(rounds: int = ROUNDS) -> list[Result]:
    return [compare(rounds, limited=True), compare(rounds, limited=False)]


def compare(rounds: int, limited: bool) -> Result:
    port = free_port()
    idle: list[float] = []
    flooded: list[float] = []
    failed = sent = 0
    with exporter(port, limited) as base:
        session = requests.post(f"{base}/api/sessions", json={"data": {"u": 1}}, timeout=5).json()
        path = f"/api/sessions/{session['id']}"
        for _ in range(rounds):
            latencies, _ = normal_gets(port, path, GETS_PER_PHASE)
            idle.append(p99(latencies))
            with flood(port):
                latencies, failures = normal_gets(port, path, GETS_PER_PHASE)
            flooded.append(p99(latencies))
            failed, sent = failed + failures, sent + GETS_PER_PHASE
        drops = dropped(base)
    value, baseline = median(flooded), median(idle)
    files = f"ulimit -n {OPEN_FILES}" if limited else "the machine's open-files limit"
    return Result(
        f"GET p99 under {SLOW_CLIENTS} slow clients (1 B/s) vs idle, {files}",
        value,
        baseline,
        "ms",
        "<= 2x",
        value <= 2 * baseline and failed == 0,
        f"p99 ms idle {[round(v, 2) for v in idle]}, flood {[round(v, 2) for v in flooded]};"
        f" {failed} of {sent} GETs failed under the flood; connections the exporter closed or"
        f" refused: {', '.join(f'{k} {v:.0f}' for k, v in drops.items())}",
    )
