"""Calling Redis from the tiered store: what a timeout means under load.

A timeout alone proves little on a busy machine: Redis's answer may have arrived while this
process's own event loop was stalled, waiting unread. So a timed-out command is checked by one
PING shared by every caller: if Redis answers, the command is tried once more, and a second
timeout counts as an outage only if our own loop ran on time meanwhile (`LoopLag`); else it is
backpressure for that request (`StoreBusy`, 503 `store_busy`), never a failover.

    calls = RedisCalls(redis_store, loop_lag)
    value = await calls.call(lambda: redis_store.get(key))
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from exporter.core.errors import StoreBusy, StoreTimeout, StoreUnavailable
from exporter.core.loop_lag import LoopLag

# A PING that timed out while our own loop stalled proves nothing: it is sent again, this often
# in all, before the request gets StoreBusy (a stall under it each time: we cannot tell).
PING_ATTEMPTS = 3
TOO_BUSY = "this process was too busy to hear Redis in time"
T = TypeVar("T")


class Pingable(Protocol):
    """What judging a timeout needs of Redis (`RedisStore` provides it)."""

    timeout: float  # of one command, in seconds

    async def ping(self) -> float: ...


class RedisCalls:
    def __init__(self, redis: Pingable, loop_lag: LoopLag) -> None:
        self.redis = redis
        self.loop_lag = loop_lag
        self._ping_probe: asyncio.Future[bool] | None = None

    async def call(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis command (idempotent: writes carry their version), a timeout judged as
        the module says."""
        try:
            return await command()
        except StoreTimeout:
            if not await self._answers_ping():
                raise
        started = self.loop_lag.clock()
        try:
            return await command()
        except StoreTimeout:
            if self.stalled_since(started):
                raise StoreBusy(TOO_BUSY) from None
            raise

    def stalled_since(self, started: float) -> bool:
        """Whether our own loop ran late, since `started`, by half a command timeout or more: an
        answer that arrived meanwhile may have been waiting unread when the timeout fired."""
        return self.loop_lag.worst_since(started) * 2 >= self.redis.timeout

    async def _answers_ping(self) -> bool:
        probe = self._ping_probe
        if probe is None or probe.done():
            probe = self._ping_probe = asyncio.ensure_future(self._ping_ok())
        return await asyncio.shield(probe)

    async def _ping_ok(self) -> bool:
        """Whether Redis answers a PING; StoreBusy if every PING timed out under a stall of our
        own loop. Only a stall during the PING counts: one before it (a busy start-up, a long
        synchronous step) says nothing about this PING."""
        for _ in range(PING_ATTEMPTS):
            started = self.loop_lag.clock()
            try:
                await self.redis.ping()
            except StoreBusy:
                return True  # connections are busy, not proven dead: the retry tells
            except StoreTimeout:
                if not self.stalled_since(started):
                    return False
            except StoreUnavailable:
                return False
            else:
                return True
        raise StoreBusy(TOO_BUSY)
