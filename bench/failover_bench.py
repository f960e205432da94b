"""Failover targets: how fast the tiered store notices a dead or hung Redis, comes back, and
replays what it journalled, against a real redis-server under a light concurrent load.

The store is opened through the library API (`open_session_manager`) at the default timeouts
(redis_timeout 0.25 s, redis_retry_interval 0.5 s); `WORKERS` tasks create, read and update
sessions in a loop (a pause after each operation keeps the load light). Each outage is timed by
polling the store's status (the same `fallback_active` the gauge reports) every millisecond:

1. SIGKILL -> fallback_active 1 (goal ≤ 1 s), median of `ROUNDS` outages;
2. restart (the new redis-server spawned) -> fallback_active 0 (goal ≤ 1 s plus the replay, here
   only the load's few hundred journalled writes), same outages;
3. failovers per outage: `store_failovers` over each outage and `SETTLE` seconds of load after
   failback, when a stale pooled socket would show up as a second failover (goal exactly 1);
4. SIGSTOP (a hung Redis: commands time out) -> fallback_active 1 (goal ≤ 1 s), median of
   `ROUNDS` hangs, each run right after a SIGKILL outage (interleaved);
5. replaying 10,000 writes journalled during an outage: from the restart until the journal is
   empty and fallback_active is 0 (goal ≤ 2 s), against one pipelined raw `SET` of the same
   10,000 payloads as the baseline.

If `Settings` has a `journal_dir` field (the durable outage journal), it is set to a temporary
directory, so the replay reads a real journal file; otherwise the journal is in memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from bench.support import RedisProcess, Result, median
from exporter.core.settings import Settings
from exporter.library.api import open_session_manager
from exporter.sessions.manager import SessionManager
from exporter.store.contract import StoreStatus
from exporter.store.tiered_store import TieredStore

WORKERS = 8
PAUSE = 0.005  # seconds a worker waits after each operation: ~1.5k operations/s in all
ROUNDS = 3  # each a SIGKILL outage, then a SIGSTOP hang
OUTAGE = 1.0  # seconds Redis stays down (or hung) after the failover is seen
SETTLE = 1.5  # seconds of load after failback in which a second failover would count
REPLAY_WRITES = 10_000
POLL = 0.001
DEADLINE = 30.0
DATA = {"user": "ada", "roles": ["designer"], "blob": "x" * 960}


def durable_journal() -> bool:
    """The durable journal is wired in when Settings knows its directory."""
    return any(f.name == "journal_dir" for f in dataclasses.fields(Settings))


@dataclass
class Load:
    """`WORKERS` tasks doing create, get, update; outcomes counted by phase."""

    manager: SessionManager
    phase: str = "healthy"
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    running: bool = True

    async def worker(self) -> None:
        own: list[str] = []
        step = 0
        while self.running:
            step += 1
            op = "create" if step % 3 == 1 or not own else "get" if step % 3 == 2 else "update"
            try:
                if op == "create":
                    own.append((await self.manager.create(DATA, ttl=600)).id)
                    del own[:-20]
                elif op == "get":
                    await self.manager.get(own[-1])
                else:
                    await self.manager.update(own[-1], DATA)
                self.outcomes[(self.phase, "ok")] += 1
            except Exception as exc:  # counted, not fatal: the point is what fails when
                self.outcomes[(self.phase, f"{op} {type(exc).__name__}")] += 1
            await asyncio.sleep(PAUSE)

    def errors(self, phase: str) -> int:
        return sum(n for (p, what), n in self.outcomes.items() if p == phase and what != "ok")

    def summary(self) -> str:
        return ", ".join(f"{p}: {w} {n}" for (p, w), n in sorted(self.outcomes.items()))


@asynccontextmanager
async def running_load(manager: SessionManager) -> AsyncIterator[Load]:
    load = Load(manager)
    tasks = [asyncio.ensure_future(load.worker()) for _ in range(WORKERS)]
    try:
        yield load
    finally:
        load.running = False
        await asyncio.gather(*tasks)


async def until(store: TieredStore, fallback: bool, *, empty_journal: bool = False) -> float:
    """Wait until fallback_active is `fallback` (and the journal empty); the monotonic time."""
    deadline = time.monotonic() + DEADLINE
    while True:
        status = store.status()
        if status.fallback_active == fallback and (not empty_journal or status.replay_pending == 0):
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"fallback_active never became {fallback}: {status}")
        await asyncio.sleep(POLL)


async def restart(redis: RedisProcess) -> float:
    """Start Redis again (in a thread: the load keeps running); when the spawn began."""
    started = time.monotonic()
    await asyncio.to_thread(redis.start)
    return started


@dataclass
class Outage:
    detect: float  # signal -> fallback_active 1, seconds
    back: float  # restart / SIGCONT -> fallback_active 0, seconds
    failovers: int
    replayed: int


async def kill_outage(redis: RedisProcess, store: TieredStore, load: Load) -> Outage:
    before = store.status()
    load.phase = "outage"
    killed = time.monotonic()
    redis.process.send_signal(signal.SIGKILL)
    detected = await until(store, True)
    await asyncio.to_thread(redis.process.wait, 10)
    await asyncio.sleep(OUTAGE)
    spawned = await restart(redis)
    return await finish(store, load, before, detected - killed, spawned)


async def hang_outage(redis: RedisProcess, store: TieredStore, load: Load) -> Outage:
    before = store.status()
    load.phase = "outage"
    stopped = time.monotonic()
    redis.process.send_signal(signal.SIGSTOP)
    detected = await until(store, True)
    await asyncio.sleep(OUTAGE)
    resumed = time.monotonic()
    redis.process.send_signal(signal.SIGCONT)
    return await finish(store, load, before, detected - stopped, resumed)


async def finish(
    store: TieredStore, load: Load, before: StoreStatus, detect: float, back_from: float
) -> Outage:
    """Wait for failback, keep the load on for `SETTLE` s, count what the outage cost."""
    load.phase = "recovering"
    back = await until(store, False, empty_journal=True)
    load.phase = "after failback"
    await asyncio.sleep(SETTLE)
    after = store.status()
    load.phase = "healthy"
    return Outage(
        detect,
        back - back_from,
        after.failovers - before.failovers,
        after.replayed - before.replayed,
    )


@dataclass
class Replay:
    total: float  # restart -> journal empty, fallback_active 0
    draining: float  # journal first shrinking -> empty


async def replay_10k(redis: RedisProcess, store: TieredStore, manager: SessionManager) -> Replay:
    """10k creates while Redis is down (no other load), then restart: seconds to an empty
    journal with fallback_active 0."""
    redis.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(redis.process.wait, 10)
    # The next write finds Redis dead and fails over; the rest are journalled.
    per_worker = REPLAY_WRITES // WORKERS

    async def writes() -> None:
        for _ in range(per_worker):
            await manager.create(DATA, ttl=600)

    await asyncio.gather(*(writes() for _ in range(WORKERS)))
    pending = store.status().replay_pending
    if pending < REPLAY_WRITES:
        raise RuntimeError(f"only {pending} writes journalled (dropped: journal full?)")
    spawned = await restart(redis)
    draining = await until_draining(store, pending)
    done = await until(store, False, empty_journal=True)
    return Replay(done - spawned, done - draining)


async def until_draining(store: TieredStore, pending: int) -> float:
    """When the journal first shrinks: the recovery probe succeeded and one batch is in."""
    deadline = time.monotonic() + DEADLINE
    while store.status().replay_pending >= pending and store.status().fallback_active:
        if time.monotonic() > deadline:
            raise RuntimeError("the journal never started draining")
        await asyncio.sleep(POLL)
    return time.monotonic()


async def raw_set_baseline(url: str) -> float:
    """Seconds for one pipelined SET of 10k session-sized payloads (what the replay must at least
    send), with the redis-py client the store uses."""
    client = aioredis.Redis.from_url(url)
    payload = os.urandom(1024)
    try:
        started = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for i in range(REPLAY_WRITES):
            pipe.set(f"bench:raw:{i}", payload, ex=600)
        await pipe.execute()
        return time.perf_counter() - started
    finally:
        await client.aclose()


def outage_results(kills: list[Outage], hangs: list[Outage], load: Load) -> list[Result]:
    detect = median([o.detect for o in kills])
    back = median([o.back for o in kills])
    hang = median([o.detect for o in hangs])
    resume = median([o.back for o in hangs])
    per_outage = [o.failovers for o in kills + hangs]
    late = load.errors("after failback")
    return [
        Result(
            f"SIGKILL -> fallback_active 1, median of {ROUNDS}, {WORKERS} workers",
            detect * 1e3,
            250,
            "ms",
            "≤ 1 s",
            detect <= 1.0,
            "runs: " + ", ".join(f"{o.detect * 1e3:.0f}" for o in kills) + " ms; "
            "baseline: redis_timeout",
        ),
        Result(
            "restart -> fallback_active 0 (incl. replay of the load's writes)",
            back * 1e3,
            500,
            "ms",
            "≤ 1 s+",
            back <= 1.0,
            "runs: "
            + ", ".join(f"{o.back * 1e3:.0f} ms ({o.replayed} replayed)" for o in kills)
            + "; from the new redis-server's spawn; baseline: redis_retry_interval",
        ),
        Result(
            f"SIGSTOP (hang) -> fallback_active 1, median of {ROUNDS}",
            hang * 1e3,
            250,
            "ms",
            "≤ 1 s",
            hang <= 1.0,
            "runs: " + ", ".join(f"{o.detect * 1e3:.0f}" for o in hangs) + " ms; "
            f"SIGCONT -> fallback_active 0: median {resume * 1e3:.0f} ms; "
            "baseline: redis_timeout",
        ),
        Result(
            f"failovers per outage ({ROUNDS} kills + {ROUNDS} hangs, {SETTLE:g} s after each)",
            max(per_outage),
            1,
            "failovers",
            "= 1",
            all(n == 1 for n in per_outage),
            f"per outage: {per_outage}; errors after failback: {late}\n    {load.summary()}",
        ),
    ]


async def run() -> list[Result]:
    # The store logs every failover and failback as a warning; the table says it better.
    logger = logging.getLogger("exporter")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return await measure()
    finally:
        logger.setLevel(level)


async def measure() -> list[Result]:
    redis = RedisProcess()  # its own: it is killed
    journal_dir = tempfile.mkdtemp(prefix="bench-journal-")
    durable = durable_journal()
    try:
        async with open_session_manager(
            redis.url, journal_dir=journal_dir if durable else None
        ) as manager:
            store = manager.store
            assert isinstance(store, TieredStore)
            journal_kind = type(store.journal).__name__  # what the store really journals to
            async with running_load(manager) as load:
                await asyncio.sleep(0.5)  # pool warm, sessions in Redis
                kills: list[Outage] = []
                hangs: list[Outage] = []
                for _ in range(ROUNDS):  # interleaved: both kinds see the same machine load
                    kills.append(await kill_outage(redis, store, load))
                    hangs.append(await hang_outage(redis, store, load))
            results = outage_results(kills, hangs, load)
            replay = await replay_10k(redis, store, manager)
        baseline = await raw_set_baseline(redis.url)
    finally:
        if redis.process.poll() is None:
            redis.process.send_signal(signal.SIGCONT)
        redis.stop()
        shutil.rmtree(journal_dir, ignore_errors=True)
    results.append(
        Result(
            f"replay {REPLAY_WRITES:,} journalled writes: restart -> journal empty, fallback 0",
            replay.total,
            baseline,
            "s",
            "≤ 2 s",
            replay.total <= 2.0,
            f"journal: {journal_kind}{' (journal_dir set)' if durable else ''}; "
            "includes waiting for the next probe (≤ redis_retry_interval); the journal drained "
            f"in {replay.draining:.2f} s after its first batch\n    "
            "baseline: one pipelined raw SET of 10k 1 KiB values",
        )
    )
    return results
