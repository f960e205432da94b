"""A hung Redis (SIGSTOP): a request waits at most one short timeout, then none while the breaker
is open; SIGCONT → the store recovers and replays."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from exporter.core.errors import StoreUnavailable
from exporter.sessions.session import session_key
from tests.support.redis_server import RedisServer
from tests.support.sessions import open_layer, wait_for

TIMEOUT = 0.25
T = TypeVar("T")


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
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
            with pytest.raises(StoreUnavailable) as unavailable:
                _, took = await timed(manager.get("unknown-session"))
            # The 503 says what Redis did: too slow, not gone (a replica's own timeout reads
            # this way while others still reach Redis).
            assert str(unavailable.value) == (
                "Redis did not answer in time; the memory tier does not hold this key"
            )
        finally:
            redis_server.resume()
        await wait_for(lambda: layer.sample("store_fallback_active") == 0, 2.0)
        assert layer.store.status().breaker_state == "closed"
        client = redis_server.client()
        for session in first:
            assert client.get("sme:" + session_key(session.id)) is not None
        client.close()
        assert layer.sample("store_failovers_total") == 1


async def test_a_stall_of_our_own_loop_before_a_hang_does_not_hide_the_outage(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Only a stall during a wait can hide Redis's answer: one before the request (a busy
    start-up, a long synchronous step) must not turn a real hang into "too busy" refusals."""
    async with open_layer(redis_url, redis_timeout=TIMEOUT, redis_retry_interval=0.3) as layer:
        await asyncio.sleep(0.1)
        time.sleep(0.3)  # our loop stalls for more than a command timeout, then runs on time
        await asyncio.sleep(0.1)  # the lag monitor has measured the stall
        redis_server.pause()
        try:
            session = await layer.manager.create({"after": "a stall"})  # journalled: acknowledged
            assert layer.sample("store_fallback_active") == 1
        finally:
            redis_server.resume()
        await wait_for(lambda: layer.sample("store_fallback_active") == 0, 2.0)
        client = redis_server.client()
        assert client.get("sme:" + session_key(session.id)) is not None
        client.close()


async def test_a_loop_that_keeps_stalling_is_backpressure_never_an_outage(
    redis_server: RedisServer, redis_url: str
) -> None:
    """A healthy Redis whose answers wait unread behind our own stalls: a write either succeeds
    or is refused as `store_busy` (nothing written); the store never fails over."""

    async def stall_every_turn() -> None:
        while True:
            time.sleep(0.3)  # longer than a command timeout, at every turn of the loop
            await asyncio.sleep(0)

    async with open_layer(redis_url, redis_timeout=TIMEOUT, redis_retry_interval=0.3) as layer:
        await layer.manager.create({"warm": "pool"})
        staller = asyncio.create_task(stall_every_turn())
        outcomes: list[str] = []
        try:
            for n in range(3):
                try:
                    await layer.manager.create({"n": n})
                    outcomes.append("created")
                except StoreUnavailable as exc:
                    outcomes.append(exc.code)
        finally:
            staller.cancel()
        assert set(outcomes) <= {"created", "store_busy"}, outcomes
        assert layer.sample("store_fallback_active") == 0
        assert layer.sample("store_failovers_total") == 0
