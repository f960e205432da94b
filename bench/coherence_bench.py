"""Coherence targets: replicas as separate processes sharing one redis-server.

1. The stale-read window: from an update acknowledged on replica A (this process) until replica B
   (a child process) has dropped its memory copy, over 1,000 updates: median and p99 against a
   Redis PING round trip measured in the same run. B stamps the moment its listener drops the
   entry (CLOCK_MONOTONIC is shared by processes); A stamps the moment `update` returned.
2. Memory-hit read cost with coherence on vs off (same run, interleaved): idle, and while a writer
   replica (another child process) keeps updating other sessions, so invalidations keep arriving
   and are handled on the reading replica's event loop.

    python -m bench coherence
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import CollectorRegistry

from bench.store_bench import DATA, raw_client
from bench.support import RedisProcess, Result, interleaved, median
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import SessionLayer, open_session_layer
from exporter.sessions.session import session_key

Reply = Callable[[str], None]


@contextlib.asynccontextmanager
async def replica(redis_url: str, *, coherence: bool = True) -> AsyncIterator[SessionLayer]:
    metrics = Metrics(CollectorRegistry())
    settings = parse_settings({"redis_url": redis_url, "redis_timeout": 1.0})
    async with open_session_layer(
        settings, metrics, EventLog(100, metrics), coherence=coherence
    ) as layer:
        yield layer


class Child:
    """A replica in a child process, driven by lines on stdin/stdout."""

    def __init__(self, mode: str, redis_url: str) -> None:
        self.args = [sys.executable, "-m", "bench.coherence_bench", "child", mode, redis_url]
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Child:
        self.process = await asyncio.create_subprocess_exec(
            *self.args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        assert (await self.process.stdout.readline()).strip() == b"ready"
        return self

    async def ask(self, line: str) -> str:
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        return (await self.process.stdout.readline()).decode().strip()

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None and self.process.stdin
        self.process.stdin.close()
        await self.process.wait()


async def ping_ms(redis_url: str, count: int = 1000) -> float:
    client = raw_client(redis_url, 1.0)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await client.ping()
        samples.append((time.perf_counter() - started) * 1000)
    await client.aclose()
    return median(samples)


async def stale_window(redis_url: str, updates: int = 1000, *, busy: bool = False) -> list[Result]:
    """`busy`: B's event loop also serves memory-hit reads non-stop (yielding every 50), as a
    replica under load does, so its listener waits its turn."""
    rtt = await ping_ms(redis_url)
    windows = []
    label = ", B busy serving reads" if busy else ""
    # x the round trip (median, p99); a busy B serves reads first, its listener waits its turn
    goals = (10, 25) if busy else (2, 2)
    async with replica(redis_url) as a, Child("busy" if busy else "holder", redis_url) as b:
        session = await a.manager.create(DATA)
        for n in range(updates):
            assert (await b.ask(f"hold {session.id}")) == "held"
            await a.manager.update(session.id, {**DATA, "n": n})
            acknowledged = time.monotonic()
            dropped = float(await b.ask("dropped"))
            assert dropped > 0, "B never dropped its copy"
            windows.append((dropped - acknowledged) * 1000)
    windows.sort()
    raw_p50 = statistics.median(windows)
    # A copy dropped before A's update returned was never stale after the ack: window 0.
    stale = [max(0.0, window) for window in windows]
    p50, p99 = statistics.median(stale), stale[int(len(stale) * 0.99) - 1]
    early = sum(1 for window in windows if window <= 0)
    note = (
        f"{updates} updates; {early} copies dropped before A's update returned; drop - ack: "
        f"min {windows[0]:.3f}, median {raw_p50:.3f}, max {windows[-1]:.3f} ms"
    )
    return [
        Result(
            "stale-read window, median (ack on A -> B's copy dropped)" + label,
            p50,
            rtt,
            "ms",
            f"≤ {goals[0]}x RTT",
            p50 <= goals[0] * rtt,
            note,
        ),
        Result(
            "stale-read window, p99" + label,
            p99,
            rtt,
            "ms",
            f"≤ {goals[1]}x RTT",
            p99 <= goals[1] * rtt,
            f"max {stale[-1]:.3f} ms; baseline: median Redis PING round trip, same run",
        ),
    ]


async def read_cost(redis_url: str, rounds: int = 60, ops: int = 2_000) -> list[Result]:
    async with replica(redis_url) as on, replica(redis_url, coherence=False) as off:
        ids = {"on": (await on.manager.create(DATA)).id, "off": (await off.manager.create(DATA)).id}
        await asyncio.sleep(0.05)  # the create's echo is confirmed

        def reader(layer: SessionLayer, sid: str) -> Callable[[], Awaitable[object]]:
            state = {"n": 0}

            async def get() -> object:
                state["n"] += 1
                if state["n"] % 20 == 0:
                    await asyncio.sleep(0)  # yield: the listener handles what arrived
                return await layer.manager.get(sid)

            return get

        candidates = {"off": reader(off, ids["off"]), "on": reader(on, ids["on"])}
        idle = await interleaved(candidates, rounds, ops)
        async with Child("writer", redis_url) as writer:
            started = time.monotonic()
            busy = await interleaved(candidates, rounds, ops)
            elapsed = time.monotonic() - started
            writes = int(await writer.ask("count"))
    ratio_idle, ratio_busy = idle["on"] / idle["off"], busy["on"] / busy["off"]
    return [
        Result(
            "memory get, coherence on vs off (idle)",
            idle["on"],
            idle["off"],
            "µs/op",
            "≤ 1.1x",
            ratio_idle <= 1.1,
            f"{1e6 / idle['on']:,.0f} vs {1e6 / idle['off']:,.0f} gets/s",
        ),
        Result(
            "memory get, coherence on vs off (another replica writing)",
            busy["on"],
            busy["off"],
            "µs/op",
            "≤ 1.25x",
            ratio_busy <= 1.25,
            f"{writes / elapsed:,.0f} writes/s of other sessions by a writer process; "
            f"{1e6 / busy['on']:,.0f} vs {1e6 / busy['off']:,.0f} gets/s",
        ),
    ]


async def run(redis_url: str) -> list[Result]:
    return [
        *await stale_window(redis_url),
        *await stale_window(redis_url, busy=True),
        *await read_cost(redis_url),
    ]


# -- child processes ----------------------------------------------------------------------------


async def child(mode: str, redis_url: str) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    def reply(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    async with replica(redis_url) as layer:
        if mode in ("holder", "busy"):
            await holder(layer, stdin, reply, busy=mode == "busy")
        else:
            await writer(layer, stdin, reply)


async def holder(
    layer: SessionLayer, stdin: asyncio.StreamReader, reply: Reply, *, busy: bool
) -> None:
    """`hold <id>`: read it into memory; `dropped`: when the listener dropped it (monotonic)."""
    store = layer.store
    stopped = False

    async def serve_reads() -> None:
        sid = (await layer.manager.create(DATA)).id
        n = 0
        while not stopped:
            n += 1
            await layer.manager.get(sid)
            if n % 50 == 0:
                await asyncio.sleep(0)

    load = asyncio.create_task(serve_reads()) if busy else None
    state: dict[str, object] = {"key": None, "dropped": None}
    original = store.invalidate

    def invalidate(key: str, reason: str = "remote") -> str:
        result = original(key, reason)
        if key == state["key"] and result == "dropped" and state["dropped"] is None:
            state["dropped"] = time.monotonic()
            done.set()
        return result

    store.invalidate = invalidate  # type: ignore[method-assign]
    done = asyncio.Event()
    reply("ready")
    while line := (await stdin.readline()).decode().split():
        if line[0] == "hold":
            await layer.manager.get(line[1])
            key = session_key(line[1])
            assert store.memory.peek(key) is not None
            state.update(key=key, dropped=None)
            done.clear()
            reply("held")
        elif line[0] == "dropped":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await done.wait()
            reply(str(state["dropped"] or -1))
    stopped = True
    if load is not None:
        await load


async def writer(layer: SessionLayer, stdin: asyncio.StreamReader, reply: Reply) -> None:
    """Updates 50 sessions round-robin until stdin closes; `count` answers how many so far."""
    sids = [(await layer.manager.create(DATA)).id for _ in range(50)]
    writes = 0
    stopped = False

    async def write() -> None:
        nonlocal writes
        while not stopped:  # a flag, not cancel(): redis-py may swallow a cancellation
            writes += 1
            await layer.manager.update(sids[writes % len(sids)], {**DATA, "n": writes})

    task = asyncio.create_task(write())
    reply("ready")
    while line := (await stdin.readline()).decode().strip():
        if line == "count":
            reply(str(writes))
    stopped = True
    await task


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        asyncio.run(child(sys.argv[2], sys.argv[3]))
    else:
        server = RedisProcess()
        try:
            for result in asyncio.run(run(server.url)):
                print(
                    f"{result.name}: {result.value:.4f} vs {result.baseline:.4f} {result.unit}"
                    f" = {result.ratio:.2f}x  ({result.note})"
                )
        finally:
            server.stop()
