"""HTTP throughput with wrk: GET /api/sessions/{id} on a memory hit, against a bare aiohttp handler
returning the same JSON and against aiohttp-session's RedisStorage loading a session per request.

Each server runs in its own process; wrk runs `-t1 -c50` for a few seconds per run, and runs are
interleaved (bare, exporter, aiohttp-session, bare, ...) so the shared machine's noise hits all
alike. Medians of the runs are compared.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis
import requests

from bench.support import Result, free_port, median

DATA = {"user": "ada", "roles": ["designer", "admin"], "prefs": {"theme": "dark"}}
COOKIE = "AIOHTTP_SESSION"


@contextmanager
def server(kind: str, arg: str) -> Iterator[str]:
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
        yield base
    finally:
        process.terminate()
        process.wait(10)


def wrk(url: str, seconds: float, headers: dict[str, str] | None = None) -> float:
    args = ["wrk", "-t1", "-c50", f"-d{seconds:g}s", url]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None or "Non-2xx" in output or ("Socket errors" in output and "timeout" in output):
        raise RuntimeError(f"wrk failed or saw errors:\n{output}")
    return float(match.group(1))


def run(redis_url: str, rounds: int = 3, seconds: float = 3.0) -> list[Result]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    client = redis.Redis.from_url(redis_url)
    with ExitStack() as stack:
        exporter = stack.enter_context(server("exporter", redis_url))
        created = requests.post(exporter + "/api/sessions", json={"data": DATA}, timeout=5)
        created.raise_for_status()
        body = created.content
        session_url = f"{exporter}/api/sessions/{created.json()['id']}"
        assert requests.get(session_url, timeout=5).content == body

        json_file = Path(tempfile.mkdtemp(prefix="bench-")) / "session.json"
        json_file.write_bytes(body)
        bare = stack.enter_context(server("bare", str(json_file)))
        peer = stack.enter_context(server("aiohttp-session", redis_url))
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
            "bare": (bare + "/api/sessions/x", None),
            "exporter": (session_url, None),
            "aiohttp-session": (peer + "/api/sessions/x", peer_headers),
        }
        for url, headers in targets.values():  # warm-up: connections, caches, JIT-free but still
            wrk(url, 1, headers)
        rates: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, (url, headers) in targets.items():
                rates[name].append(wrk(url, seconds, headers))
    client.close()
    ours, bare_rate, peer_rate = (
        median(rates[name]) for name in ("exporter", "bare", "aiohttp-session")
    )
    runs = ", ".join(f"{name} {[round(r) for r in values]}" for name, values in rates.items())
    return [
        Result(
            "GET /api/sessions/{id} (memory hit) vs bare aiohttp handler",
            ours,
            bare_rate,
            "req/s",
            "≥ 0.7x",
            ours / bare_rate >= 0.7,
            runs,
        ),
        Result(
            "GET /api/sessions/{id} (memory hit) vs aiohttp-session RedisStorage",
            ours,
            peer_rate,
            "req/s",
            "≥ 3x",
            ours / peer_rate >= 3,
        ),
    ]
