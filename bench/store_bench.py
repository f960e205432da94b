"""Store-level targets, timed in-process on one event loop.

1. memory-tier get through the instrumented SessionManager vs the same store uninstrumented;
2. Redis-tier get (memory miss) through the SessionManager vs a raw redis.asyncio GET of the same
   bytes.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from bench.support import RedisProcess, Result, interleaved
from exporter.config import parse_settings
from exporter.events import EventLog
from exporter.metrics import Metrics
from exporter.sessions.factory import create_redis_client, open_session_layer
from exporter.sessions.manager import session_key

DATA = {
    "user": "ada",
    "roles": ["designer", "admin"],
    "prefs": {"theme": "dark"},
    "blob": "x" * 900,
}


async def memory_get(rounds: int = 40, ops: int = 2_000) -> list[Result]:
    metrics = Metrics(CollectorRegistry())
    async with open_session_layer(parse_settings({}), metrics, EventLog(100, metrics)) as layer:
        manager, store = layer.manager, layer.store
        session = await manager.create(DATA)
        sid, key = session.id, session_key(session.id)

        async def bare_store() -> object:
            value = await store.get(key)
            return value.decoded  # type: ignore[union-attr]

        async def bare_manager_path() -> object:
            # SessionManager.get's memory-hit path with the recording lines left out.
            value = store.get_cached("s:{" + sid + "}")
            if value is not None and value.decoded is not None:
                return value.decoded
            raise AssertionError("expected a memory hit")

        async def instrumented() -> object:
            return await manager.get(sid)

        us = await interleaved(
            {"store": bare_store, "path": bare_manager_path, "ours": instrumented}, rounds, ops
        )
    value = us["ours"]
    return [
        Result(
            "memory get: instrumented SessionManager vs uninstrumented store.get",
            value,
            us["store"],
            "µs/op",
            "≤ 1.5×",
            value / us["store"] <= 1.5,
        ),
        Result(
            "memory get: instrumented vs the same manager path, recording removed",
            value,
            us["path"],
            "µs/op",
            "≤ 1.5×",
            value / us["path"] <= 1.5,
        ),
    ]


async def redis_get(redis_url: str, rounds: int = 40, ops: int = 200) -> Result:
    metrics = Metrics(CollectorRegistry())
    # A one-entry memory tier: every get below misses memory and reads through from Redis.
    settings = parse_settings(
        {"redis_url": redis_url, "memory_max_entries": 1, "redis_timeout": 1.0}
    )
    raw = create_redis_client(settings)  # the same client settings as the store's own client
    async with open_session_layer(settings, metrics, EventLog(100, metrics)) as layer:
        manager = layer.manager
        ids = [(await manager.create(DATA)).id for _ in range(64)]
        keys = [settings.redis_key_prefix + session_key(sid) for sid in ids]
        size = len(await raw.get(keys[0]))
        state = {"i": 0}

        async def raw_get() -> object:
            state["i"] += 1
            return await raw.get(keys[state["i"] & 63])

        async def tiered_get() -> object:
            state["i"] += 1
            return await manager.get(ids[state["i"] & 63])

        us = await interleaved({"raw": raw_get, "ours": tiered_get}, rounds, ops)
        hits = layer.instrumentation.cache_counts[("redis", "hit")]
    await raw.aclose()
    value, baseline = us["ours"], us["raw"]
    return Result(
        "redis-tier get (memory miss) vs raw redis.asyncio GET",
        value,
        baseline,
        "µs/op",
        "≤ 1.15×",
        value / baseline <= 1.15,
        f"{size} B values, {hits} Redis hits",
    )


async def run(redis_url: str) -> list[Result]:
    return [*await memory_get(), await redis_get(redis_url)]


if __name__ == "__main__":
    server = RedisProcess()
    try:
        for result in asyncio.run(run(server.url)):
            print(
                f"{result.name}: {result.value:.2f} vs {result.baseline:.2f} {result.unit} = {result.ratio:.2f}×"
            )
    finally:
        server.stop()
