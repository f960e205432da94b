"""What the paths past the memory tier share: the tier itself, Redis, the guarded way of calling
it (`RedisCalls`), the outage driver (`Recovery`), the journal, and the calls that register keys
with Redis's tracking (`TrackedRedis`). The read path, the write path and parking each extend it
with what is theirs.

    reads = ReadPath(tier, redis, calls, recovery, journal, tracked)
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.store.journal import Journal
from exporter.store.memory_tier import MemoryTier
from exporter.store.recovery import Recovery
from exporter.store.redis_calls import RedisCalls
from exporter.store.redis_store import RedisStore
from exporter.store.tracked_redis import TrackedRedis


@dataclass(eq=False)
class RedisSide:
    tier: MemoryTier
    redis: RedisStore
    calls: RedisCalls
    recovery: Recovery
    journal: Journal
    tracked: TrackedRedis

    def began(self) -> int:
        """Taken before a Redis call, for `stale` after it fails."""
        return self.recovery.failover.failbacks

    def stale(self, began: int) -> bool:
        """Whether a call that `began` before a failback failed after it. Its failure belongs to
        the outage that ended (a Cluster node's CLUSTERDOWN comes back after redis-py's 0.25 s
        waits); reported as a new one, it would serve a fallback from the memory tier the failback
        just flushed: 503s for every session the tier held. A real new outage shows in the next
        call, or in the replay of what the stale call journalled."""
        return self.recovery.failover.failbacks != began
