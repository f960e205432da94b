"""Store-level targets, timed in-process on one event loop.

1. memory-tier get through the instrumented SessionManager vs the same store uninstrumented;
2. Redis-tier get (memory miss) through the SessionManager vs a raw redis.asyncio GET of the same
   bytes;
3. create (write-through) through the SessionManager vs a raw SET, by CPU time, with each layer
   between them measured in the same run (where the HTTP create's extra cost goes).
"""

from __future__ import annotations

import asyncio
import secrets
import time

import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bench import speedups_bench
from bench.support import RedisProcess, Result, interleaved
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import open_session_layer
from exporter.sessions.session import session_key
from exporter.store.contract import StoredValue
from exporter.store.session_index import PUT_INDEXED

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
            value = store.reads.get("s:{" + sid + "}")
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
            "≤ 1.5x",
            value / us["store"] <= 1.5,
        ),
        Result(
            "memory get: instrumented vs the same manager path, recording removed",
            value,
            us["path"],
            "µs/op",
            "≤ 1.5x",
            value / us["path"] <= 1.5,
        ),
    ]


def raw_client(url: str, timeout: float) -> aioredis.Redis:
    """A plain redis.asyncio client with the store's client settings (timeouts, no retries)."""
    return aioredis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


async def redis_get(
    redis_url: str, rounds: int = 40, ops: int = 200, sessions: int = 4000
) -> Result:
    """Memory misses on keys the memory tier does not hold (emptied, untimed, before each run): the
    read-through cost of a cold key, without evictions (the tier has room)."""
    metrics = Metrics(CollectorRegistry())
    settings = parse_settings({"redis_url": redis_url, "redis_timeout": 1.0})
    raw = raw_client(redis_url, settings.redis_timeout)
    async with open_session_layer(settings, metrics, EventLog(100, metrics)) as layer:
        manager = layer.manager
        ids = [(await manager.create(DATA)).id for _ in range(sessions)]
        keys = [settings.redis_key_prefix + session_key(sid) for sid in ids]
        stored = await raw.get(keys[0])
        assert isinstance(stored, bytes), stored
        size = len(stored)
        state = {"i": 0}

        async def raw_get() -> object:
            state["i"] += 1
            return await raw.get(keys[state["i"] % sessions])

        async def tiered_get() -> object:
            state["i"] += 1
            return await manager.get(ids[state["i"] % sessions])

        us = await interleaved(
            {"raw": raw_get, "ours": tiered_get}, rounds, ops, before=layer.store.memory.clear
        )
        counts = layer.instrumentation.cache_counts
        hits, memory_hits = counts[("redis", "hit")], counts[("memory", "hit")]
    await raw.aclose()
    value, baseline = us["ours"], us["raw"]
    return Result(
        "redis-tier get (memory miss) vs raw redis.asyncio GET",
        value,
        baseline,
        "µs/op",
        "≤ 1.1x",
        value / baseline <= 1.1,
        f"{size} B values, {hits} Redis hits, {memory_hits} memory hits",
    )


async def redis_create(redis_url: str, rounds: int = 20, ops: int = 200) -> Result:
    """Creates through the instrumented manager (coherent: the echo of a new id needs no check)
    against one raw SET of the same bytes; the layers between them in the note, with a write
    whose echo is checked by a GET (an update's) for comparison."""
    metrics = Metrics(CollectorRegistry())
    settings = parse_settings({"redis_url": redis_url, "redis_timeout": 1.0})
    raw = raw_client(redis_url, settings.redis_timeout)
    script = raw.register_script(PUT_INDEXED)
    now = time.time()
    document = orjson.dumps({"created_at": now, "expires_at": now + 3600, "data": DATA})
    async with open_session_layer(settings, metrics, EventLog(100, metrics)) as layer:
        store, redis_tier = layer.store, layer.store.redis
        assert redis_tier is not None

        def fresh_key() -> str:
            return session_key(secrets.token_urlsafe(24))

        async def raw_set() -> object:
            return await raw.set("bench:" + fresh_key(), document, px=3_600_000)

        async def raw_script() -> object:
            member, expires = secrets.token_urlsafe(24), int(time.time() * 1000) + 3_600_000
            keys = ["bench:" + session_key(member), "bench:index"]
            return await script(keys=keys, args=[document, expires, member, "0"])

        async def redis_store_set() -> object:
            value = StoredValue(document, time.time_ns(), time.time() + 3600, None)
            return await redis_tier.set(fresh_key(), value)

        async def tiered_set() -> object:
            return await store.set(fresh_key(), document, 3600.0, sole=True)

        async def tiered_set_checked() -> object:
            return await store.set(fresh_key(), document, 3600.0)

        async def create() -> object:
            return await layer.manager.create(DATA)

        # By this process's CPU time: a write's wall time is mostly waiting for Redis, and the
        # GET confirming a checked echo runs after it returns.
        us = await interleaved(
            {
                "raw SET": raw_set,
                "raw EVALSHA of the indexed put": raw_script,
                "RedisStore.set": redis_store_set,
                "TieredStore.set of a new key": tiered_set,
                "SessionManager.create": create,
                "(TieredStore.set, echo checked by a GET)": tiered_set_checked,
            },
            rounds,
            ops,
            clock=time.process_time,
        )
    await raw.aclose()
    value, baseline = us["SessionManager.create"], us["raw SET"]
    layers = ", ".join(f"{name} {cpu:.1f}" for name, cpu in us.items())
    return Result(
        "create (write-through, coherent) vs raw redis.asyncio SET, by client CPU",
        value,
        baseline,
        "µs/op",
        "info",
        True,
        f"CPU µs per call, layer by layer: {layers}",
    )


async def run(redis_url: str) -> list[Result]:
    return [
        *await memory_get(),
        await redis_get(redis_url),
        await redis_create(redis_url),
        *await speedups_bench.run(),
    ]


if __name__ == "__main__":
    server = RedisProcess()
    try:
        for result in asyncio.run(run(server.url)):
            print(
                f"{result.name}: {result.value:.2f} vs {result.baseline:.2f} {result.unit}"
                f" = {result.ratio:.2f}x"
            )
    finally:
        server.stop()
