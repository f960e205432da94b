"""The fleet: every replica on one Redis publishes its latest summary there, and reads everyone's.

Once per snapshot interval, in a background task (never in `collect()` or a request), this
replica
- writes its `ReplicaSummary` under `<prefix>{fleet}:replica:<id>` with a TTL of three intervals
  (at least 15 s), so a replica that dies drops out of the view by itself, and stamps its id in
  the `<prefix>{fleet}:replicas` sorted set (scores: publish times; older than the TTL removed);
- reads the newest MAX_REPLICAS summaries back (one MGET: the `{fleet}` hash tag keeps these
  keys in one Redis Cluster slot) into `view`, which `?scope=fleet` answers and the stream sends
  as `fleet` messages;
- writes the per-session access counts that moved since the last flush
  (`exporter.monitoring.session_counters`), one pipeline for all of them.

When Redis does not answer, `view` says so (`status: degraded`, the last replicas read, with
their ages growing, and this replica's fresh summary) and the next interval tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.monitoring.fleet_view import Fleet, ReplicaSummary, fleet_view
from exporter.monitoring.live_updates import Broadcaster
from exporter.monitoring.session_counters import SessionCounters
from exporter.store.redis_client import RedisClient

log = logging.getLogger(__name__)

MAX_REPLICAS = 64  # listed in the view; more are counted in `truncated`
MIN_TTL = 15.0
_decode = msgspec.json.Decoder(ReplicaSummary).decode
_encode = msgspec.json.Encoder().encode


def replica_ttl(interval: float) -> float:
    """How long a summary outlives its replica's last publish."""
    return max(MIN_TTL, 3 * interval)


class FleetPublisher:
    """Publishes this replica's summary and session counters; keeps the fleet's view."""

    def __init__(
        self,
        redis: RedisClient,
        prefix: str,
        replica: str,
        summarize: Callable[[], ReplicaSummary],
        counters: SessionCounters,
        hub: Broadcaster | None,
        *,
        interval: float,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.replica = replica
        self.summarize = summarize
        self.counters = counters
        self.hub = hub
        self.interval = interval
        self.timeout = timeout
        self.ttl = replica_ttl(interval)
        self.clock = clock
        self.index_key = f"{prefix}{{fleet}}:replicas"
        self.key_prefix = f"{prefix}{{fleet}}:replica:"
        self._known: list[ReplicaSummary] = []
        self._read_at: float | None = None
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self.view: Fleet = fleet_view(
            [], me=replica, now=clock(), status="degraded", message="not published yet"
        )

    async def start(self) -> None:
        with contextlib.suppress(Exception):  # a first view at once; the loop retries anyway
            await self.publish()
        self._task = asyncio.create_task(self._run(), name="fleet-publisher")

    async def stop(self) -> None:
        """Stop; remove this replica from the view at once instead of waiting for its TTL."""
        await cancel_and_wait(self._task)
        self._task = None
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                await self._flush_counters()
                await self.redis.delete(self.key_prefix + self.replica)
                await self.redis.zrem(self.index_key, self.replica)

    async def _run(self) -> None:
        while True:
            raise_if_cancelled()  # redis-py may have swallowed a cancel
            await asyncio.sleep(self.interval)
            with contextlib.suppress(Exception):  # publish() records its own failures
                await self.publish()

    async def publish(self) -> Fleet:
        """One round: write ours, read everyone's, flush the counters; update `view`."""
        mine = self.summarize()
        now = self.clock()
        try:
            async with asyncio.timeout(self.timeout):
                self._known = await self._exchange(mine, now)
                await self._flush_counters()
        except Exception as exc:
            self._failed(exc)
            others = [r for r in self._known if r.replica != self.replica]
            self.view = fleet_view(
                [mine, *others],
                me=self.replica,
                now=now,
                status="degraded",
                message=f"Redis unreachable ({type(exc).__name__}): the replicas last read,"
                " and this one's own numbers",
                read_at=self._read_at,
                limit=MAX_REPLICAS,
            )
            raise
        else:
            self._recovered()
            self._read_at = now
            self.view = fleet_view(self._known, me=self.replica, now=now, limit=MAX_REPLICAS)
        finally:
            if self.hub is not None:
                self.hub.publish("fleet", self.view)
        return self.view

    async def _exchange(self, mine: ReplicaSummary, now: float) -> list[ReplicaSummary]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key_prefix + self.replica, _encode(mine), px=int(self.ttl * 1000))
            pipe.zadd(self.index_key, {self.replica: now})
            pipe.zremrangebyscore(self.index_key, "-inf", now - self.ttl)
            pipe.expire(self.index_key, int(self.ttl) + 1)
            pipe.zrevrange(self.index_key, 0, MAX_REPLICAS)  # one more: is the list truncated?
            replies = await pipe.execute()
        ids = [_text(item) for item in replies[-1]]
        if not ids:
            return [mine]
        values: list[Any] = await self.redis.mget([self.key_prefix + i for i in ids])
        return [summary for summary in map(_summary, values) if summary is not None]

    async def _flush_counters(self) -> None:
        deltas = self.counters.pending()
        if not deltas:
            return
        wall_minus_perf = time.time() - time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            self.counters.commands(pipe, deltas, self.clock(), wall_minus_perf)
            await pipe.execute()
        self.counters.written(deltas)

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            log.warning("fleet publishing failed (%s); retrying every interval", type(exc).__name__)
        self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            log.info("fleet publishing resumed")
        self._failing = False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _summary(value: bytes | str | None) -> ReplicaSummary | None:
    """A stored summary, or None when it expired meanwhile or does not decode (another
    version's shape): one bad entry never hides the others."""
    if value is None:
        return None
    try:
        return _decode(value)
    except msgspec.DecodeError:
        return None
