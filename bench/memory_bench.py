"""Memory-tier targets: what a stored session costs the process, and what the tier counts for it.

`SESSIONS` sessions of 1 KiB (their data decoded from a request body each, as the HTTP API does,
and their response body built once) are created through the SessionManager in memory-only mode.
Growth is measured twice: with tracemalloc (Python allocations) and as the RSS delta (what the
operating system sees, allocator slack included, in a fresh interpreter), each in a fresh session
layer.

1. process memory growth per session vs the session's 1 KiB of JSON (goal ≤ 3 KiB: ≤ 3x);
2. the tier's counted bytes (`MemoryStore.bytes`) vs the tracemalloc growth (goal within ±30 %).
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc

import orjson
from prometheus_client import CollectorRegistry

from bench.support import Result, in_fresh_interpreter
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import open_session_layer

SESSIONS = 20_000
BODY = orjson.dumps({"user": "ada", "roles": ["designer", "admin"], "blob": "x" * 950})
SETTINGS = {"memory_max_entries": 10 * SESSIONS, "memory_max_bytes": 1 << 34}


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def grow(traced: bool) -> tuple[float, float]:
    """(process bytes per session, counted bytes per session) over SESSIONS creates."""
    metrics = Metrics(CollectorRegistry())
    async with open_session_layer(
        parse_settings(SETTINGS), metrics, EventLog(100, metrics)
    ) as layer:
        manager, tier = layer.manager, layer.store.memory
        for _ in range(500):  # warm up: first-use allocations are not per-session costs
            (await manager.create(orjson.loads(BODY))).json_bytes()
        gc.collect()
        if traced:
            tracemalloc.start()
        before, counted = (
            (tracemalloc.get_traced_memory()[0] if traced else rss_bytes()),
            tier.bytes,
        )
        for _ in range(SESSIONS):
            (await manager.create(orjson.loads(BODY))).json_bytes()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0] if traced else rss_bytes()
        if traced:
            tracemalloc.stop()
        return (after - before) / SESSIONS, (tier.bytes - counted) / SESSIONS


def rss_in_fresh_process() -> float:
    """RSS growth per session in a new interpreter: in this one, memory freed by earlier benches
    would be reused and hide the growth."""
    script = (
        "import asyncio; from bench.memory_bench import grow; print(asyncio.run(grow(False))[0])"
    )
    return float(in_fresh_interpreter(script))


async def measure() -> list[Result]:
    rss = rss_in_fresh_process()
    traced, counted = await grow(traced=True)
    body = len(BODY)
    note = f"{SESSIONS} sessions of {body} B; RSS grew {rss:.0f} B per session"
    return [
        Result(
            "memory-only: tracemalloc growth per stored session vs its JSON",
            traced,
            body,
            "B/session",
            "≤ 3x",
            traced <= 3 * 1024,
            note,
        ),
        Result(
            "memory-only: RSS growth per stored session vs its JSON",
            rss,
            body,
            "B/session",
            "≤ 3x",
            rss <= 3 * 1024,
        ),
        Result(
            "memory tier: counted bytes vs tracemalloc growth per session",
            counted,
            traced,
            "B/session",
            "0.7-1.3x",
            0.7 <= counted / traced <= 1.3,
        ),
    ]


def run() -> list[Result]:
    return asyncio.run(measure())


if __name__ == "__main__":
    for result in run():
        print(
            f"{result.name}: {result.value:.0f} vs {result.baseline:.0f} {result.unit}"
            f" = {result.ratio:.2f}x  ({result.note})"
        )
