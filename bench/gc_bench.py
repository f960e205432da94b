"""Cycle-collector pauses with a full memory tier.

CPython's cyclic garbage collector walks every tracked container in a full (generation 2)
collection, and starts one by itself whenever a quarter more objects have survived than the last
one left. While it runs the event loop stands still: every request in flight waits, and a Redis
reply waiting unread may outlast its timeout. Held sessions cannot form reference cycles, so the
collector need not walk them (`exporter.core.acyclic`): a full collection with the tier full
should cost about what it costs with the tier empty.

Measured in a fresh interpreter (the leftovers of other sections would be walked too): the median
of 5 full collections with the memory-only tier empty, then with it holding `SESSIONS` sessions of
1 KiB (the default `memory_max_entries`, the body `bench memory` stores) created through the
SessionManager.

1. a full collection holding SESSIONS sessions vs holding none (goal ≤ 2x).
"""

from __future__ import annotations

import gc
import json
import time

import orjson
from prometheus_client import CollectorRegistry

from bench.memory_bench import BODY
from bench.support import Result, in_fresh_interpreter, median
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import open_session_layer

SESSIONS = 100_000


def full_collection_ms(times: int = 5) -> float:
    """Median wall time of a full collection, in ms."""
    pauses = []
    for _ in range(times):
        started = time.perf_counter()
        gc.collect()
        pauses.append((time.perf_counter() - started) * 1000)
    return median(pauses)


async def pauses() -> dict[str, float]:
    """Full-collection ms and tracked objects, with the tier empty and then full."""
    metrics = Metrics(CollectorRegistry())
    settings = parse_settings({"memory_max_entries": SESSIONS})
    async with open_session_layer(settings, metrics, EventLog(100, metrics)) as layer:
        manager = layer.manager
        empty, empty_objects = full_collection_ms(), len(gc.get_objects())
        for _ in range(SESSIONS):
            (await manager.create(orjson.loads(BODY))).json_bytes()
        assert len(layer.store.memory) == SESSIONS
        full, full_objects = full_collection_ms(), len(gc.get_objects())
    return {"empty": empty, "full": full, "empty_objects": empty_objects, "objects": full_objects}


def run() -> list[Result]:
    script = "import asyncio, json; from bench.gc_bench import pauses; "
    script += "print(json.dumps(asyncio.run(pauses())))"
    figures = json.loads(in_fresh_interpreter(script))
    added = figures["objects"] - figures["empty_objects"]
    return [
        Result(
            f"full GC pause, memory tier holding {SESSIONS:,} sessions vs empty",
            figures["full"],
            figures["empty"],
            "ms",
            "≤ 2x",
            figures["full"] <= 2 * figures["empty"],
            f"tracked objects {figures['empty_objects']:.0f} empty, {added:+.0f} with the "
            "sessions held",
        )
    ]


if __name__ == "__main__":
    for result in run():
        print(f"{result.name}: {result.value:.1f} vs {result.baseline:.1f} ms ({result.note})")
