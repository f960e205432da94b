"""The memory tier counts what its sessions cost the process (within ±30 % of tracemalloc)."""

from __future__ import annotations

import gc
import tracemalloc

import orjson
from prometheus_client import CollectorRegistry

from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import open_session_layer
from exporter.store.contract import right_sized

BODY = orjson.dumps({"user": "ada", "blob": "x" * 1000})
SESSIONS = 2_000


def test_right_sized_bytes_drop_orjson_working_buffer() -> None:
    tracemalloc.start()
    try:
        kept = [orjson.dumps({"blob": "x" * 1000}) for _ in range(100)]
        raw = tracemalloc.get_traced_memory()[0]
        kept = [right_sized(out) for out in kept]
        gc.collect()
        sized = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept[0] == orjson.dumps({"blob": "x" * 1000})
    assert sized < raw / 3


async def test_counted_bytes_match_what_sessions_cost() -> None:
    metrics = Metrics(CollectorRegistry())
    settings = parse_settings({"memory_max_entries": 10 * SESSIONS, "memory_max_bytes": 1 << 32})
    async with open_session_layer(settings, metrics, EventLog(100, metrics)) as layer:
        manager, tier = layer.manager, layer.store.memory
        for _ in range(200):  # first-use allocations are not per-session costs
            (await manager.create(orjson.loads(BODY))).json_bytes()
        gc.collect()
        tracemalloc.start()
        try:
            before, counted_before = tracemalloc.get_traced_memory()[0], tier.bytes
            for _ in range(SESSIONS):
                (await manager.create(orjson.loads(BODY))).json_bytes()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        counted = tier.bytes - counted_before
    assert 0.7 * grown <= counted <= 1.3 * grown, (counted / SESSIONS, grown / SESSIONS)
    assert grown / SESSIONS <= 3 * 1024
