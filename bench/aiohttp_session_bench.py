"""aiohttp-session storages under load: exporter.library.aiohttp_session.TieredStorage vs
aiohttp-session's own RedisStorage, both behind the same handler (GET /count increments a counter in
the session: a load and a save per request), in the same run.

wrk (`-t1 -c50`) spreads requests over 50 sessions (a Lua script rotates their cookies), in
interleaved runs, medians compared. Then Redis is SIGKILLed and each server gets one more run
while it is down: its failed requests (non-2xx, socket errors) are counted; Redis is restarted
empty after each (no persistence), and TieredStorage's sessions are checked to be replayed.
About 25 s.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis
import requests

from bench.http_bench import Server, cpu_seconds, server
from bench.support import RedisProcess, Result, median

COOKIE = "AIOHTTP_SESSION"
SESSIONS = 50
KINDS = {"TieredStorage": "counter-tiered", "RedisStorage": "counter-redis"}
LUA = """
cookies = {%s}
i = 0
request = function()
  i = i %% #cookies + 1
  return wrk.format(nil, nil, {["Cookie"] = "%s=" .. cookies[i]})
end
"""


@dataclass
class Load:
    rate: float  # requests per second
    requests: int
    errors: int  # non-2xx responses and socket errors
    cpu_us: float | None  # server CPU per request


def sessions(base: str) -> list[str]:
    """Session ids from fresh sessions (one GET /count each, no cookie sent)."""
    ids = []
    for _ in range(SESSIONS):
        response = requests.get(base + "/count", timeout=5)
        response.raise_for_status()
        cookie = response.cookies[COOKIE]
        assert cookie is not None, f"no {COOKIE} cookie"
        ids.append(cookie)
    return ids


def script(ids: list[str]) -> Path:
    path = Path(tempfile.mkdtemp(prefix="bench-wrk-")) / "cookies.lua"
    path.write_text(LUA % (", ".join(f'"{i}"' for i in ids), COOKIE))
    return path


def wrk(url: str, lua: Path, seconds: int, pid: int) -> Load:
    before = cpu_seconds(pid)
    args = ["wrk", "-t1", "-c50", f"-d{seconds}s", "--timeout", "2s", "-s", str(lua), url]
    output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    after = cpu_seconds(pid)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rate is None or total is None:
        raise RuntimeError(f"wrk failed:\n{output}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", output))
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket is not None:
        errors += sum(int(n) for n in socket.groups())
    count = int(total.group(1))
    cpu_us = None
    if before is not None and after is not None and count:
        cpu_us = (after - before) / count * 1e6
    return Load(float(rate.group(1)), count, errors, cpu_us)


def replayed(redis_url: str, timeout: float = 10.0) -> int:
    """TieredStorage's sessions back in the restarted (empty) Redis once it replays; polled."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            found = sum(1 for _ in client.scan_iter("sme:s:*", count=1000))
            if found >= SESSIONS or time.monotonic() > deadline:
                return found
            time.sleep(0.05)
    finally:
        client.close()


def outage(target: Server, lua: Path, store: RedisProcess, seconds: int) -> Load:
    """One wrk run while Redis is SIGKILLed; Redis is restarted (empty) afterwards."""
    store.kill()
    try:
        return wrk(target.base + "/count", lua, seconds, target.pid)
    finally:
        store.start()


def measure(
    servers: dict[str, Server], scripts: dict[str, Path], path: str, rounds: int, seconds: int
) -> dict[str, list[Load]]:
    """Interleaved wrk runs of `path` on each server (after a 1 s warm-up each)."""
    for name, s in servers.items():
        wrk(s.base + path, scripts[name], 1, s.pid)
    runs: dict[str, list[Load]] = {name: [] for name in servers}
    for _ in range(rounds):
        for name, s in servers.items():
            runs[name].append(wrk(s.base + path, scripts[name], seconds, s.pid))
    return runs


def run(rounds: int = 4, seconds: int = 1, outage_seconds: int = 2) -> list[Result]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    store = RedisProcess()  # our own: this section kills it
    try:
        with ExitStack() as stack:
            servers = {
                name: stack.enter_context(server(kind, store.url)) for name, kind in KINDS.items()
            }
            scripts = {name: script(sessions(s.base)) for name, s in servers.items()}
            writes = measure(servers, scripts, "/count", rounds, seconds)
            reads = measure(servers, scripts, "/read", rounds, seconds)
            ours, theirs = servers["TieredStorage"], servers["RedisStorage"]
            down = {"TieredStorage": outage(ours, scripts["TieredStorage"], store, outage_seconds)}
            back = replayed(store.url)
            down["RedisStorage"] = outage(theirs, scripts["RedisStorage"], store, outage_seconds)
    finally:
        store.stop()
    return [
        throughput("GET /count (load + save per request)", writes, "≥ 2x", 2),
        throughput("GET /read (load only, session unchanged)", reads, "≥ 2x", 2),
        outage_result(down, back),
    ]


def throughput(what: str, runs: dict[str, list[Load]], goal: str, ratio: float) -> Result:
    ours, theirs = (median([r.rate for r in runs[n]]) for n in ("TieredStorage", "RedisStorage"))
    rates = ", ".join(f"{name} {[round(r.rate) for r in values]}" for name, values in runs.items())
    cpu = {
        name: median([r.cpu_us for r in values if r.cpu_us is not None])
        for name, values in runs.items()
        if all(r.cpu_us is not None for r in values)
    }
    cpu_note = ", ".join(f"{name} {us:.0f} µs" for name, us in cpu.items()) or "not measured"
    return Result(
        f"aiohttp-session {what}: TieredStorage vs RedisStorage",
        ours,
        theirs,
        "req/s",
        goal,
        ours / theirs >= ratio,
        f"{rates}\n    server CPU/request: {cpu_note}",
    )


def outage_result(down: dict[str, Load], back: int) -> Result:
    errors = "; ".join(
        f"{name} {load.errors} of {load.requests} requests failed ({load.rate:.0f} req/s)"
        for name, load in down.items()
    )
    return Result(
        "aiohttp-session GET /count while Redis is down: failed requests, ours vs RedisStorage",
        down["TieredStorage"].errors,
        down["RedisStorage"].errors,
        "errors",
        "ours 0",
        down["TieredStorage"].errors == 0,
        f"{errors}\n    TieredStorage sessions replayed to the restarted Redis:"
        f" {back} of {SESSIONS}",
    )
