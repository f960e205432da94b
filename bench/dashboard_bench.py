"""The dashboard and the fleet view: what they cost the server.

1. Fleet publishing on vs off. Two exporter processes on one Redis, identical but for
   `--fleet-publish`, with snapshots (so publishing and counter flushes) every 5 s (the default),
   then every second (five times the work). Each holds 1,000 sessions in its memory tier; wrk
   reads them at random (a Lua script), so every flush writes hundreds of sessions' counters.
   Runs are interleaved, in alternating order; the median throughput with publishing is
   compared with the median without (goal: at least 0.95x, i.e. a cost of at most 5 %), with
   server CPU per request beside it (steadier than throughput on a shared machine).
2. 200 open dashboards. One exporter (default 5 s snapshots, Redis, fleet on) alone for a window,
   then with 200 dashboards open for the same window (each fetched the reports once and holds the
   event stream: `bench.dashboard_clients`, a process of its own); the server's CPU time from
   /proc, loaded minus idle, as a share of one core (goal: under 5 %). Windows alternate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from bench.http_bench import Run, cpu_seconds, server, wrk
from bench.support import Result, free_port, median

SESSIONS = 1000
DASHBOARDS = 200
WINDOW = 15.0


def read_script(directory: Path, ids: list[str]) -> Path:
    """A wrk script reading the sessions at random."""
    listed = ", ".join(f'"{i}"' for i in ids)
    script = directory / f"read-{len(ids)}-{os.getpid()}-{time.monotonic_ns()}.lua"
    script.write_text(
        f"local ids = {{{listed}}}\n"
        "request = function()\n"
        '  return wrk.format("GET", "/api/sessions/" .. ids[math.random(#ids)])\n'
        "end\n"
    )
    return script


def create_sessions(base: str, count: int) -> list[str]:
    with requests.Session() as http:
        return [
            http.post(f"{base}/api/sessions", json={"data": {"n": n}}, timeout=5).json()["id"]
            for n in range(count)
        ]


def publishing_results(
    redis_url: str, interval: float, rounds: int = 6, seconds: float = 3.0
) -> list[Result]:
    directory = Path(tempfile.mkdtemp(prefix="bench-"))
    with (
        server(f"exporter-fleet@{interval:g}", redis_url) as on,
        server(f"exporter-no-fleet@{interval:g}", redis_url) as off,
    ):
        targets = {
            name: (
                side.base + "/",
                side.pid,
                read_script(directory, create_sessions(side.base, SESSIONS)),
            )
            for name, side in (("publishing", on), ("not publishing", off))
        }
        for url, _, script in targets.values():
            wrk(url, 1, script=script)
        runs: dict[str, list[Run]] = {name: [] for name in targets}
        for round_number in range(rounds):
            # The order alternates: in an A/A run (both not publishing) the server measured
            # first in every round came out 4 % dearer per request, a bias of the order alone.
            order = list(targets.items())
            for name, (url, pid, script) in order if round_number % 2 == 0 else order[::-1]:
                runs[name].append(wrk(url, seconds, pid=pid, script=script))
        flushed = requests.get(on.base + "/api/session-metrics/realtime?scope=fleet", timeout=5)
    on_rate, off_rate = (
        median([r.rate for r in runs[n]]) for n in ("publishing", "not publishing")
    )
    cpu = {
        name: median([r.cpu_us for r in values if r.cpu_us is not None])
        for name, values in runs.items()
        if all(r.cpu_us is not None for r in values)
    }
    rates = ", ".join(f"{name} {[round(r.rate) for r in values]}" for name, values in runs.items())
    cpu_text = ", ".join(f"{name} {us:.1f} µs" for name, us in cpu.items())
    status = flushed.json()["status"]
    cpu_ratio = (
        f"{cpu['publishing'] / cpu['not publishing']:.3f}x" if len(cpu) == 2 else "not measured"
    )
    return [
        Result(
            f"GET /api/sessions/{{id}} (memory hits, 1,000 sessions), fleet publishing on vs off,"
            f" snapshots every {interval:g} s",
            on_rate,
            off_rate,
            "req/s",
            "≥ 0.95x",
            on_rate / off_rate >= 0.95,
            f"{rates}\n    server CPU/request: {cpu_text} ({cpu_ratio}); fleet view: {status}",
        )
    ]


@contextmanager
def exporter_process(redis_url: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
    args = [sys.executable, "-m", "exporter", "--listen", f"127.0.0.1:{port}"]
    args += ["--redis-url", redis_url, "--sse-max-clients", str(DASHBOARDS * 2)]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(base):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("exporter did not start")
            time.sleep(0.05)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(15)


def _ready(base: str) -> bool:
    try:
        return requests.get(base + "/-/ready", timeout=0.5).ok
    except requests.ConnectionError:
        return False


@contextmanager
def dashboards(base: str) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.dashboard_clients", base, str(DASHBOARDS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the dashboards did not connect")
        yield
    finally:
        process.terminate()
        process.wait(10)


def core_share(pid: int, seconds: float) -> float:
    """The process's CPU time over the next `seconds`, as a share of one core."""
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    after, elapsed = cpu_seconds(pid), time.monotonic() - started
    if before is None or after is None:
        raise RuntimeError("needs /proc")
    return (after - before) / elapsed


def dashboards_results(redis_url: str, rounds: int = 2) -> list[Result]:
    idle: list[float] = []
    loaded: list[float] = []
    with exporter_process(redis_url) as (base, pid):
        time.sleep(2)  # past start-up
        for _ in range(rounds):
            idle.append(core_share(pid, WINDOW))
            with dashboards(base):
                time.sleep(1)  # past the connection burst: the steady state is measured
                loaded.append(core_share(pid, WINDOW))
                clients = requests.get(base + "/api/session-metrics/realtime", timeout=5).json()
            time.sleep(1)
    cost = median(loaded) - median(idle)
    windows = f"idle {[f'{x:.2%}' for x in idle]}, with dashboards {[f'{x:.2%}' for x in loaded]}"
    return [
        Result(
            f"{DASHBOARDS} open dashboards (SSE + one fetch each): server CPU, share of one core",
            cost * 100,
            5.0,
            "% of a core",
            "< 5 %",
            cost < 0.05,
            f"{windows}; {clients['sse_clients']} stream clients in the last snapshot",
        )
    ]


def run(redis_url: str) -> list[Result]:
    return [
        *publishing_results(redis_url, interval=5.0),  # the default: the goal's setting
        *publishing_results(redis_url, interval=1.0),  # five times the work, for the margin
        *dashboards_results(redis_url),
    ]
