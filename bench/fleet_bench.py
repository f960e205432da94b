"""What coherence costs as the fleet grows: real replica processes on one redis-server.

Each replica is the exporter app in a process of its own (`LAUNCH`); writes go over HTTP
(creates, and updates of what was just created). CPU is read from
`/proc/<pid>/task/*/schedstat` (nanoseconds, every thread), less the same process's CPU over an
equally long quiet spell just after (its own timers: heartbeats, keep-alives). The snapshot
timer (every 5 s by default: metrics, fleet publishing, counter flushes) is set to an hour: its
work does not depend on the others' writes, and a tick landing in one window and not the other
was most of the noise (up to 4 ms per 1,000 writes when the idle replica holds nothing).

- an idle replica's CPU per 1,000 writes made by 1, 2 and 4 other replicas, holding none of the
  keys, then holding all of them (it read each session once; each is then updated once);
- Redis's CPU per write with 1, 3 and 5 replicas connected (writes made by one of them, one at
  a time; the others are started and stopped again in each of `REDIS_ROUNDS` rounds, so the
  configurations alternate; see `redis_figures`).

The baseline is the same measurement of the exporter at `FLEET_BASELINE` (default: the last
commit with BCAST tracking), extracted from git with `git archive` into .cache/ and run from
there: the old mode is not kept in the code. Medians of `ROUNDS` runs; both in the same run.

    python -m bench fleet
    FLEET_BASELINE=<commit> python -m bench fleet
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import requests

from bench.support import RedisProcess, Result, free_port, median
from exporter.sessions.session import session_key

# The last commit whose coherence used BCAST tracking on the session prefix.
DEFAULT_BASELINE = "d2ce9c332953962ca68309fa445e2740aff27c7f"
ROUNDS = 3
REDIS_ROUNDS = 5
WRITES = 2000  # per measurement
CONCURRENCY = 8
QUIET = 0.5  # extra seconds of quiet measured beside each run's own length
WRITERS = (1, 2, 4)
CONNECTED = (1, 3, 5)
KEY_PREFIX = "sme:"  # the replicas' (default) Redis key prefix


@dataclass
class Replica:
    base: str
    pid: int


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid` so far, in nanoseconds (schedstat's first field)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return total


# The exporter as `bench.servers exporter` serves it, but without the snapshot timer; written
# against what both this tree and the baseline have (parse_settings, create_app).
LAUNCH = """
import sys
import uvloop
from aiohttp import web
from prometheus_client import CollectorRegistry
from exporter.app.gc_tuning import tune_collector
from exporter.core.settings import parse_settings
from exporter.web import create_app

uvloop.install()
settings = parse_settings({"redis_url": sys.argv[2], "snapshot_interval": 3600})
app = create_app(settings, registry=CollectorRegistry())
tune_collector(settings.gc_young_threshold)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


@contextmanager
def replicas(redis_url: str, tree: Path | None, count: int) -> Iterator[list[Replica]]:
    """`count` exporter apps, each in a process of its own, started together; from `tree` (an
    extracted commit) if given."""
    environment = dict(os.environ)
    if tree is not None:
        environment["PYTHONPATH"] = str(tree)
    started: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for _ in range(count):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, str(port), redis_url],
                cwd=tree or Path.cwd(),
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            started.append((process, f"http://127.0.0.1:{port}"))
        for process, base in started:
            await_ready(process, base, tree)
        time.sleep(0.5)  # tracking established, first refreshes done
        yield [Replica(base, process.pid) for process, base in started]
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            process.wait(10)


def await_ready(process: subprocess.Popen[bytes], base: str, tree: Path | None) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(base + "/-/ready", timeout=0.5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"a replica from {tree or 'this tree'} did not start")
        time.sleep(0.05)


def baseline_tree(revision: str) -> Path:
    """`exporter/` and `bench/` at `revision`, extracted once into .cache/."""
    tree = Path(".cache/fleet-baseline") / revision
    if not (tree / "exporter").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", revision, "exporter", "bench"],
            capture_output=True,
            check=True,
        ).stdout
        archive_path = tree / "tree.tar"
        archive_path.write_bytes(archive)
        with tarfile.open(archive_path) as tar:
            tar.extractall(tree, filter="data")
        archive_path.unlink()
    return tree.resolve()


async def write_load(
    http: aiohttp.ClientSession,
    writers: list[Replica],
    ids: list[str] | None,
    concurrency: int = CONCURRENCY,
) -> list[str]:
    """WRITES writes spread over `writers`, `concurrency` at a time: updates of `ids` if given,
    else creates each followed by one update. Returns the ids written."""
    done: list[str] = []
    jobs = list(ids) if ids is not None else [None] * (WRITES // 2)
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker(n: int) -> None:
        while not queue.empty():
            sid = queue.get_nowait()
            base = writers[(n + len(done)) % len(writers)].base
            if sid is None:
                async with http.post(base + "/api/sessions", json={"data": {"n": n}}) as r:
                    sid = (await r.json())["id"]
            async with http.put(base + f"/api/sessions/{sid}", json={"data": {"m": n}}) as r:
                assert r.status == 200, r.status
            done.append(sid)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done


async def measured(
    http: aiohttp.ClientSession,
    pids: list[int],
    writers: list[Replica],
    ids: list[str] | None,
    concurrency: int = CONCURRENCY,
) -> tuple[list[float], int]:
    """CPU (ns) each of `pids` spent while `writers` wrote, less its CPU over as long a quiet
    spell; and how many writes were made."""
    started, cpu0 = time.monotonic(), [cpu_ns(pid) for pid in pids]
    written = await write_load(http, writers, ids, concurrency)
    elapsed = time.monotonic() - started
    busy = [cpu_ns(pid) - before for pid, before in zip(pids, cpu0, strict=True)]
    quiet0 = [cpu_ns(pid) for pid in pids]
    await asyncio.sleep(elapsed + QUIET)
    share = elapsed / (elapsed + QUIET)
    quiet = [(cpu_ns(pid) - before) * share for pid, before in zip(pids, quiet0, strict=True)]
    writes = len(written) * (2 if ids is None else 1)
    return [max(0.0, b - q) for b, q in zip(busy, quiet, strict=True)], writes


class BareListener:
    """`bench/bare_listener.py` in a process of its own: the floor under holding keys."""

    def __init__(self, redis_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_listener", redis_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.process.pid
        assert self.answer() == "ready"

    def answer(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def hold(self, keys: list[str]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("hold " + " ".join(keys) + "\n")
        self.process.stdin.flush()
        assert self.answer() == "held"

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


async def idle_replica_figures(
    replicas: list[Replica], floor: BareListener | None
) -> dict[str, float]:
    """ms of the idle replica's CPU per 1,000 writes made by the others; with `floor`, also the
    bare listener's, holding the same keys in the same windows."""
    idle, others = replicas[-1], replicas[:-1]
    watched = [idle.pid] if floor is None else [idle.pid, floor.pid]
    figures: dict[str, list[float]] = {}

    def note(name: str, cpu: float, writes: int) -> None:
        figures.setdefault(name, []).append(cpu / 1e6 / writes * 1000)

    async with aiohttp.ClientSession() as http:
        for _ in range(ROUNDS):
            for count in WRITERS:
                writers = others[:count]
                cpus, writes = await measured(http, [idle.pid], writers, None)
                note(f"none-{count}", cpus[0], writes)
                created = await write_load(http, writers, None)  # sessions to hold
                for sid in created:
                    async with http.get(idle.base + f"/api/sessions/{sid}") as r:
                        assert r.status == 200
                if floor is not None:
                    floor.hold([KEY_PREFIX + session_key(sid) for sid in created])
                cpus, writes = await measured(http, watched, writers, created)
                note(f"held-{count}", cpus[0], writes)
                if floor is not None:
                    note(f"floor-{count}", cpus[1], writes)
    return {name: median(values) for name, values in figures.items()}


async def redis_cpu_per_write(redis: RedisProcess, writer: Replica) -> float:
    """µs of Redis's CPU per write made by `writer`, one write at a time."""
    async with aiohttp.ClientSession() as http:
        cpus, writes = await measured(http, [redis.process.pid], [writer], None, concurrency=1)
    return cpus[0] / 1e3 / writes


def redis_figures(redis: RedisProcess, tree: Path | None) -> dict[str, float]:
    """µs of Redis's CPU per write made by one replica while 1, 3 and 5 replicas run, and the
    growth from 1 to 5.

    Writes go one at a time: with several in flight, how many share one of Redis's reads varies
    with scheduling, and so did the CPU per write, by ±10 % between runs of one configuration
    (±5 % one at a time). The other replicas are started and stopped again in every round, so
    the configurations alternate and a drift (Redis's dataset growing, the machine's load)
    falls on each alike; the growth is the median of each round's own ratio."""
    samples: dict[int, list[float]] = {connected: [] for connected in CONNECTED}
    with replicas(redis.url, tree, 1) as (writer,):
        for _ in range(REDIS_ROUNDS):
            with ExitStack() as stack:
                running = 1
                for connected in CONNECTED:
                    if connected > running:
                        stack.enter_context(replicas(redis.url, tree, connected - running))
                        running = connected
                    samples[connected].append(asyncio.run(redis_cpu_per_write(redis, writer)))
    figures = {f"redis-{connected}": median(values) for connected, values in samples.items()}
    pairs = zip(samples[CONNECTED[0]], samples[CONNECTED[-1]], strict=True)
    figures["redis-growth"] = median([most / one for one, most in pairs])
    return figures


def measure(tree: Path | None) -> dict[str, float]:
    """Every figure for one implementation, on a Redis of its own."""
    redis = RedisProcess()
    try:
        figures = redis_figures(redis, tree)
        floor = BareListener(redis.url) if tree is None else None
        try:
            with replicas(redis.url, tree, WRITERS[-1] + 1) as fleet:
                figures.update(asyncio.run(idle_replica_figures(fleet, floor)))
        finally:
            if floor is not None:
                floor.close()
    finally:
        redis.stop()
    return figures


def results(ours: dict[str, float], old: dict[str, float], revision: str) -> list[Result]:
    rows = []
    for count in WRITERS:
        for held, goal in (("none", 1.0), ("held", 10.0)):
            name = f"{held}-{count}"
            holding = "holding none of the keys" if held == "none" else "holding all of them"
            rows.append(
                Result(
                    f"idle replica CPU per 1k writes by {count} other(s), {holding}",
                    ours[name],
                    old[name],
                    "ms",
                    f"<={goal:g} ms" if count == 4 else "report",
                    ours[name] <= goal if count == 4 else True,
                )
            )
    for count in WRITERS:
        rows.append(
            Result(
                f"idle replica holding all, {count} writer(s): vs a bare listener (the floor)",
                ours[f"held-{count}"],
                ours[f"floor-{count}"],
                "ms",
                "report",
                True,
                note="bare listener: uvloop protocol + hiredis, parsing only (bare_listener.py)"
                if count == WRITERS[-1]
                else "",
            )
        )
    for connected in CONNECTED:
        rows.append(
            Result(
                f"Redis CPU per write, {connected} replica(s) connected",
                ours[f"redis-{connected}"],
                old[f"redis-{connected}"],
                "µs",
                "report",
                True,
            )
        )
    growth, old_growth = ours["redis-growth"], old["redis-growth"]
    rows.append(
        Result(
            "Redis CPU per write, 5 replicas vs 1 (this tree; baseline: BCAST)",
            growth,
            old_growth,
            "ratio",
            "<=1.05",
            growth <= 1.05,
            note=f"baseline: {revision[:12]} extracted from git (BCAST tracking)",
        )
    )
    return rows


def run() -> list[Result]:
    revision = os.environ.get("FLEET_BASELINE", DEFAULT_BASELINE)
    tree = baseline_tree(revision)
    print(f"fleet: this tree, then {revision[:12]} from git (about 5 minutes)", flush=True)
    ours = measure(None)
    old = measure(tree)
    return results(ours, old, revision)
