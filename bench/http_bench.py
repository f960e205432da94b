"""HTTP throughput with wrk: GET /api/sessions/{id} on a memory hit, against a bare aiohttp handler
returning the same JSON and against aiohttp-session's RedisStorage loading a session per request.

Each server runs in its own process; wrk runs `-t1 -c50` for a few seconds per run, and runs are
interleaved (bare, exporter, aiohttp-session, bare, ...) so the shared machine's noise hits all
alike. Medians of the runs are compared.

Throughput on a shared 2-vCPU host also measures how much CPU the other tenants leave the server,
so each run also reads the server's own CPU time (/proc/<pid>/stat): CPU µs per request is printed
next to the throughput, as a cross-check that is not skewed by the share of CPU a run happened to
get. The exporter's counters are read afterwards to show the reads really were memory hits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.support import Result, free_port, median

DATA: dict[str, Any] = {"user": "ada", "roles": ["designer", "admin"], "prefs": {"theme": "dark"}}
COOKIE = "AIOHTTP_SESSION"


@dataclass
class Server:
    base: str
    pid: int


@dataclass
class Run:
    rate: float  # requests per second
    cpu_us: float | None  # server CPU per request (None without /proc)


@contextmanager
def server(kind: str, arg: str) -> Iterator[Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.servers", kind, str(port), arg],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(base + "/-/healthy", timeout=0.5)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    errors = process.stderr.read() if process.stderr else ""
                    raise RuntimeError(f"{kind} server did not start: {errors}") from None
                time.sleep(0.05)
        yield Server(base, process.pid)
    finally:
        process.terminate()
        process.wait(10)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far, from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str,
    seconds: float,
    headers: dict[str, str] | None = None,
    pid: int | None = None,
    script: Path | None = None,
) -> Run:
    args = ["wrk", "-t1", "-c50", f"-d{seconds:g}s", url]
    if script is not None:
        args += ["-s", str(script)]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    before = cpu_seconds(pid) if pid is not None else None
    output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    after = cpu_seconds(pid) if pid is not None else None
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if (
        rate is None
        or total is None
        or "Non-2xx" in output
        or ("Socket errors" in output and "timeout" in output)
    ):
        raise RuntimeError(f"wrk failed or saw errors:\n{output}")
    cpu_us = None
    if before is not None and after is not None:
        cpu_us = (after - before) / int(total.group(1)) * 1e6
    return Run(float(rate.group(1)), cpu_us)


def memory_hits(base: str) -> tuple[float, float]:
    """(memory hits, all session gets) from the exporter's own counters."""
    text = requests.get(base + "/metrics", timeout=5).text
    values = {
        (sample.name, sample.labels.get("tier"), sample.labels.get("result")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("manager") == "session"
        and sample.labels.get("operation", "get") == "get"
    }
    hits = values.get(("session_exporter_cache_requests_total", "memory", "hit"), 0.0)
    gets = values.get(("session_exporter_operation_duration_seconds_count", None, None), 0.0)
    return hits, gets


def cpu_note(runs: dict[str, list[Run]]) -> str:
    """Median server CPU µs per request, and the exporter's CPU-based ratio to the others."""
    cpu = {
        name: median([r.cpu_us for r in values if r.cpu_us is not None])
        for name, values in runs.items()
        if all(r.cpu_us is not None for r in values)
    }
    if "exporter" not in cpu:
        return "server CPU per request: not measured (no /proc)"
    parts = [f"{name} {us:.1f} µs" for name, us in cpu.items()]
    ratios = [f"{cpu[name] / cpu['exporter']:.2f}x {name}" for name in cpu if name != "exporter"]
    return f"server CPU/request: {', '.join(parts)} (exporter by CPU: {', '.join(ratios)})"


def post_script(directory: Path) -> Path:
    """A wrk script that POSTs a create body (wrk's own Lua API: method, body, headers)."""
    body = json.dumps({"data": DATA}).replace("\\", "\\\\").replace('"', '\\"')
    script = directory / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return script


def create_results(redis_url: str, rounds: int, seconds: float) -> list[Result]:
    """POST /api/sessions (write-through to Redis) against a bare handler doing one raw SET."""
    script = post_script(Path(tempfile.mkdtemp(prefix="bench-")))
    with server("exporter", redis_url) as ours, server("bare-set", redis_url) as bare:
        targets = {
            "bare SET": (bare.base + "/api/sessions", bare.pid),
            "exporter": (ours.base + "/api/sessions", ours.pid),
        }
        for url, _ in targets.values():
            wrk(url, 1, script=script)
        runs: dict[str, list[Run]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, (url, pid) in targets.items():
                runs[name].append(wrk(url, seconds, pid=pid, script=script))
    ours_rate, bare_rate = (median([r.rate for r in runs[n]]) for n in ("exporter", "bare SET"))
    rates = ", ".join(f"{name} {[round(r.rate) for r in values]}" for name, values in runs.items())
    return [
        Result(
            "POST /api/sessions (write-through) vs bare handler doing one raw SET",
            ours_rate,
            bare_rate,
            "req/s",
            "≥ 0.8x",
            ours_rate / bare_rate >= 0.8,
            f"{rates}\n    {cpu_note(runs)}",
        )
    ]


def cpu_result(runs: dict[str, list[Run]]) -> Result | None:
    """Server CPU per request, exporter vs bare (not skewed by the CPU share a run got)."""
    cpu = {
        name: median([r.cpu_us for r in runs[name] if r.cpu_us is not None])
        for name in ("exporter", "bare")
        if all(r.cpu_us is not None for r in runs[name])
    }
    if len(cpu) < 2:
        return None
    ratio = cpu["exporter"] / cpu["bare"]
    return Result(
        "GET /api/sessions/{id} (memory hit): server CPU per request vs bare handler",
        cpu["exporter"],
        cpu["bare"],
        "µs/req",
        "≤ 1.2x",
        ratio <= 1.2,
    )


def run(redis_url: str, rounds: int = 5, seconds: float = 2.0) -> list[Result]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    client = redis.Redis.from_url(redis_url)
    with ExitStack() as stack:
        exporter_server = stack.enter_context(server("exporter", redis_url))
        exporter = exporter_server.base
        created = requests.post(exporter + "/api/sessions", json={"data": DATA}, timeout=5)
        created.raise_for_status()
        body = created.content
        session_url = f"{exporter}/api/sessions/{created.json()['id']}"
        assert requests.get(session_url, timeout=5).content == body

        json_file = Path(tempfile.mkdtemp(prefix="bench-")) / "session.json"
        json_file.write_bytes(body)
        bare_server = stack.enter_context(server("bare", str(json_file)))
        peer_server = stack.enter_context(server("aiohttp-session", redis_url))
        bare, peer = bare_server.base, peer_server.base
        key = "benchsession"
        client.set(
            f"{COOKIE}_{key}",
            json.dumps({"created": int(time.time()), "session": {"session": DATA}}),
        )
        peer_headers = {"Cookie": f"{COOKIE}={key}"}
        assert (
            requests.get(peer + "/api/sessions/x", headers=peer_headers, timeout=5).json() == DATA
        )

        targets = {
            "bare": (bare + "/api/sessions/x", None, bare_server.pid),
            "exporter": (session_url, None, exporter_server.pid),
            "aiohttp-session": (peer + "/api/sessions/x", peer_headers, peer_server.pid),
        }
        for url, headers, _ in targets.values():  # warm-up: connections, caches
            wrk(url, 1, headers)
        hits_before, gets_before = memory_hits(exporter)
        runs: dict[str, list[Run]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, (url, headers, pid) in targets.items():
                runs[name].append(wrk(url, seconds, headers, pid))
        hits_after, gets_after = memory_hits(exporter)
    client.close()
    ours, bare_rate, peer_rate = (
        median([r.rate for r in runs[name]]) for name in ("exporter", "bare", "aiohttp-session")
    )
    rates = ", ".join(f"{name} {[round(r.rate) for r in values]}" for name, values in runs.items())
    gets = gets_after - gets_before
    hit_note = f"{hits_after - hits_before:.0f} of {gets:.0f} exporter reads were memory hits"
    cpu = cpu_result(runs)
    return [
        Result(
            "GET /api/sessions/{id} (memory hit) vs bare aiohttp handler",
            ours,
            bare_rate,
            "req/s",
            "≥ 0.85x",
            ours / bare_rate >= 0.85,
            f"{rates}\n    {cpu_note(runs)}\n    {hit_note}",
        ),
        *([cpu] if cpu is not None else []),
        Result(
            "GET /api/sessions/{id} (memory hit) vs aiohttp-session RedisStorage",
            ours,
            peer_rate,
            "req/s",
            "≥ 4x",
            ours / peer_rate >= 4,
        ),
        *create_results(redis_url, rounds, seconds),
    ]
