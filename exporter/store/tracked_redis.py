"""The Redis tier's calls that register their key with Redis's tracking for this replica: reads
that fill memory, and session writes, sent through the lane of the key's server (tracking.py).

Each answers with its result and whether memory may keep the key: Redis now tracks it for this
replica (so a change made elsewhere will be reported), or nobody needs to (not a tracked key).
Without a lane (tracking down there, or the lane just ended) each falls back to the plain
`RedisStore` call, answering "not tracked": memory must not keep what nobody would report.

    tracked = TrackedRedis(redis)
    tracked.track(lanes, ("s:",))  # by coherence, once its lanes exist
    value, keep = await tracked.get("s:abc")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AskError, ClusterDownError, MovedError, ResponseError, TryAgainError

from exporter.store.contract import StoredValue, decode_value
from exporter.store.redis_client import REDIS_FAILURES
from exporter.store.redis_store import TOMBSTONE, RedisStore, _unavailable
from exporter.store.tracking import CACHING_YES, Command, Lane, LaneClosed, Lanes, raise_errors

# A Cluster's redirections of a command sent through a lane: the client sends it again, and
# follows them.
REDIRECTED = (MovedError, AskError, ClusterDownError, TryAgainError)


class TrackedRedis:
    """`RedisStore`'s reads and writes of the tracked prefixes, through the lanes."""

    def __init__(self, redis: RedisStore) -> None:
        self.redis = redis
        # Set by coherence: the lanes that register keys with Redis's tracking, and which
        # (logical) keys memory may keep only while Redis tracks them for this replica.
        self.lanes: Lanes | None = None
        self.prefixes: tuple[str, ...] = ()

    def track(self, lanes: Lanes, prefixes: tuple[str, ...]) -> None:
        """Send the reads that fill memory, and our own writes, through `lanes` (tracking.py)."""
        self.lanes, self.prefixes = lanes, prefixes

    def tracks(self, key: str) -> bool:
        """Whether a write of `key` would go through a lane now (then it cannot echo back)."""
        return self._needs_tracking(key) and self._lane(self.redis.prefix + key) is not None

    def _needs_tracking(self, key: str) -> bool:
        return self.lanes is not None and key.startswith(self.prefixes)

    def _lane(self, full_key: str) -> Lane | None:
        """The lane to the server holding `full_key`, if tracking is up there."""
        assert self.lanes is not None
        client = self.redis.client
        if isinstance(client, RedisCluster):
            node = client.get_node_from_key(full_key)
            return None if node is None else self.lanes.lane((node.host, int(node.port)))
        return self.lanes.lane()

    async def get(self, key: str) -> tuple[StoredValue | None, bool]:
        """`RedisStore.get`, and whether memory may keep the value: Redis now tracks the key for
        this replica (read through its lane after `CLIENT CACHING YES`), or nobody needs to."""
        redis = self.redis
        if not self._needs_tracking(key):
            return await redis.get(key), True
        full_key = redis.prefix + key
        lane = self._lane(full_key)
        if lane is None:
            return await redis.get(key), False
        started = time.perf_counter()
        try:
            caching, raw = await lane.call([CACHING_YES, ("GET", full_key)], redis.timeout)
        except LaneClosed:
            return await redis.get(key), False
        except REDIS_FAILURES as exc:
            raise _unavailable(exc) from None
        if isinstance(raw, REDIRECTED):  # a Cluster slot moved: the client follows it
            return await redis.get(key), False
        if isinstance(raw, ResponseError):
            raise _unavailable(raw)
        redis.last_latency_ms = (time.perf_counter() - started) * 1000
        value = None if raw is None else decode_value(raw) or TOMBSTONE
        return value, not isinstance(caching, ResponseError)

    async def set(
        self, key: str, value: StoredValue, *, replace: bool = False
    ) -> tuple[bool, bool]:
        """`RedisStore.set`, and whether Redis tracks the key for this replica afterwards. The
        write goes through the key's lane, then `CLIENT CACHING YES` and `EXISTS`: a write ends
        every registration of its key, the `EXISTS` makes it again, and NOLOOP keeps the write
        from being reported to the lane that made it (our every registration is on it)."""
        redis = self.redis
        if not self._needs_tracking(key):
            return await redis.set(key, value, replace=replace), True
        full_key = redis.prefix + key
        lane = self._lane(full_key)
        if lane is None:
            return await redis.set(key, value, replace=replace), False
        tracked = [False]

        async def run(command: Command) -> Any:
            try:
                replies = await lane.call(
                    [command, CACHING_YES, ("EXISTS", full_key)], redis.timeout
                )
                if isinstance(replies[0], REDIRECTED):
                    raise replies[0]
            except (LaneClosed, *REDIRECTED):  # may not have run: the client sends it again
                return await redis.client.execute_command(*command)
            tracked[0] = not any(isinstance(reply, ResponseError) for reply in replies[1:])
            return raise_errors(replies[:1])[0]

        written = await redis.set(key, value, replace=replace, run=run)
        return written, tracked[0]

    async def get_many(self, keys: Sequence[str]) -> tuple[list[StoredValue | None], bool]:
        """`RedisStore.get_many`, and whether memory may keep every value (see `get`)."""
        redis = self.redis
        if not any(self._needs_tracking(key) for key in keys):
            return await redis.get_many(keys), True
        if isinstance(redis.client, RedisCluster):  # keys on several nodes: one GET each
            pairs = await asyncio.gather(*(self.get(key) for key in keys))
            values = [None if value is TOMBSTONE else value for value, _ in pairs]
            return values, all(tracked for _, tracked in pairs)
        prefixed = [redis.prefix + key for key in keys]
        lane = self._lane(prefixed[0])
        if lane is None:
            return await redis.get_many(keys), False
        try:
            caching, raws = await lane.call([CACHING_YES, ("MGET", *prefixed)], redis.timeout)
        except LaneClosed:
            return await redis.get_many(keys), False
        except REDIS_FAILURES as exc:
            raise _unavailable(exc) from None
        if isinstance(raws, ResponseError):
            raise _unavailable(raws)
        values = [None if raw is None else decode_value(raw) for raw in raws]
        return values, not isinstance(caching, ResponseError)
