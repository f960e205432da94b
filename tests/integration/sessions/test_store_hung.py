"""A hung Redis (SIGSTOP): a request waits at most one short timeout, then none while the breaker
is open; SIGCONT → the store recovers and replays."""

from __future__ import annotations

import asyncio
import time

import pytest

from exporter.errors import StoreUnavailable
from exporter.sessions.session import session_key
from tests.support.redis_server import RedisServer
from tests.support.sessions import open_layer, wait_for

TIMEOUT = 0.25


async def timed(awaitable) -> tuple[object, float]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = await awaitable
    return result, time.perf_counter() - started


async def test_hung_redis_costs_one_timeout_then_nothing(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with open_layer(redis_url, redis_timeout=TIMEOUT, redis_retry_interval=0.3) as layer:
        manager = layer.manager
        known = await manager.create({"before": True})
        redis_server.pause()
        try:
            # The first writes find out: each waits at most about one timeout, none fails.
            first, took = await timed(asyncio.gather(*(manager.create({"n": n}) for n in range(5))))
            assert took < TIMEOUT + 0.5
            assert layer.store.status().breaker_state in ("open", "half_open")
            assert layer.sample("store_fallback_active") == 1

            # Breaker open: no call waits for Redis any more.
            slowest = 0.0
            for n in range(50):
                _, took = await timed(manager.update(first[n % 5].id, {"n": n}))
                slowest = max(slowest, took)
                _, took = await timed(manager.get(known.id))
                slowest = max(slowest, took)
            assert slowest < TIMEOUT / 2
            with pytest.raises(StoreUnavailable):
                _, took = await timed(manager.get("unknown-session"))
        finally:
            redis_server.resume()
        await wait_for(lambda: layer.sample("store_fallback_active") == 0, 2.0)
        assert layer.store.status().breaker_state == "closed"
        client = redis_server.client()
        for session in first:
            assert client.get("sme:" + session_key(session.id)) is not None
        client.close()
        assert layer.sample("store_failovers_total") == 1
