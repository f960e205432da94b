"""Reads past the memory tier: the replay journal, then Redis (read-through, filling memory).

A key the journal holds is answered from it (a write not replayed yet is newer than Redis's
copy). While Redis is unreachable, a miss only Redis could answer raises `StoreUnavailable`
(HTTP 503 + Retry-After), never a false "not found"; a session's miss is final only once the whole
fleet has settled (`Recovery.check_miss`). A read that raced a write or an invalidation does not
fill memory (`WriteGuard`), nor one that Redis does not track for this replica (`tracking.py`).

    reads = ReadPath(tier, redis, calls, recovery, journal, tracked)
    value = await reads.get("s:{abc}")   # after a memory miss
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.core.errors import StoreBusy, StoreUnavailable
from exporter.store.breaker import CLOSED
from exporter.store.contract import CacheRecorder, StoredValue
from exporter.store.redis_side import RedisSide
from exporter.store.redis_store import TOMBSTONE


@dataclass(eq=False)
class ReadPath(RedisSide):
    async def get(self, key: str, record: CacheRecorder | None = None) -> StoredValue | None:
        """See `TieredStore.get_uncached`."""
        if self.journal:
            pending = self.journal.get(key)
            if pending is not None:
                value = pending.value
                live = value is not None and value.remaining(self.tier.clock.now()) > 0
                return value if live else None
        redis, recovery, tier = self.tracked, self.recovery, self.tier
        if recovery.breaker.state != CLOSED:
            raise recovery.not_held()
        token, read_at, began = tier.guard.watch(key), tier.clock.now(), self.began()
        tracked = False
        try:
            value, tracked = await self.calls.call(lambda: redis.get(key))
        except StoreBusy:
            raise  # backpressure for this request only: Redis is fine
        except StoreUnavailable as exc:
            if self.stale(began):
                return await self.get(key, record)  # Redis answers again since: ask it again
            recovery.failed(exc)
            if not tier.reads.bypass:  # bypassed for coherence only: the fallback serves memory
                held = tier.memory.get(key)
                if held is not None:
                    return held
            exc.retry_after = recovery.breaker.retry_after()
            raise
        finally:
            clean = tier.guard.unwatch(key, token)
        if value is TOMBSTONE:
            value = None  # deleted: a final answer
        elif value is None and tier.is_session(key):
            await recovery.check_miss(read_at)
        if record is not None:
            record("redis", value is not None)
        if value is not None and clean and tracked:
            # Fill memory unless a newer local write landed while the GET was in flight, or
            # Redis does not track the key for us (it would not tell us of a change).
            return tier.fill(key, value)
        return value
