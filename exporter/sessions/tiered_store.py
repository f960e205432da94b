"""The tiered store: a memory tier in front of Redis, with fallback, failback and replay.

Composes a `MemoryStore` and an optional `RedisStore` (no inheritance). Keys are logical
(`s:{id}`, `figma:...`); the Redis tier prepends the configured prefix.

- Reads: memory, then the replay journal, then Redis (read-through; the memory copy never outlives
  the key's Redis TTL, because both come from the value's own `expires_at`).
- Writes: write-through. When Redis fails, the breaker opens, the store falls back to memory and
  journals every write (callers see no error); a miss that only Redis could answer raises
  `StoreUnavailable` (HTTP 503 + Retry-After), never a false "not found".
- Recovery: a background task probes Redis every `retry_interval`; once it answers, writes go to
  Redis again, the journal is replayed with version checks done inside Redis, and the memory tier is
  flushed (it may hold copies another replica changed meanwhile) before fallback ends.

    async with TieredStore(MemoryStore(1000, 1 << 20), RedisStore(client)) as store:
        await store.set("s:{abc}", b"{}", ttl=60)
        (await store.get("s:{abc}")).payload
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType

from exporter.errors import StoreUnavailable
from exporter.events import EventLog
from exporter.metrics import INVALIDATION_REASONS, Metrics
from exporter.sessions.breaker import CLOSED, CircuitBreaker
from exporter.sessions.journal import ReplayJournal
from exporter.sessions.memory_store import MemoryStore
from exporter.sessions.redis_store import RedisStore, ReplayItem
from exporter.sessions.store import CacheRecorder, StoredValue, StoreStatus, new_version

log = logging.getLogger(__name__)

REPLAY_BATCH = 256
SWEEP_INTERVAL = 1.0
ExpiryCallback = Callable[[str, StoredValue], None]


class TieredStore:
    def __init__(
        self,
        memory: MemoryStore,
        redis: RedisStore | None = None,
        *,
        breaker: CircuitBreaker | None = None,
        replay_max_entries: int = 10_000,
        metrics: Metrics | None = None,
        events: EventLog | None = None,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self.memory = memory
        self.redis = redis
        self.breaker = breaker or CircuitBreaker(retry_interval=0.5)
        self.journal = ReplayJournal(replay_max_entries)
        self.events = events
        self.sweep_interval = sweep_interval
        self.fallback_active = False
        self.fallback_since: float | None = None
        self.failovers = 0
        # While True, reads skip the memory tier and writes do not fill it (coherence unknown).
        self.memory_bypass = False
        # Bumped by every delete/invalidation: a read-through that started before must not re-fill
        # memory with the copy it fetched, which may be the one just deleted.
        self._invalidation_epoch = 0
        self._expiry_listeners: list[tuple[str, ExpiryCallback]] = []
        self._outage_drops = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._redis_failed = asyncio.Event()
        self._recover_lock = asyncio.Lock()
        self._metrics = metrics
        self._bind_metrics(metrics)
        memory.on_expire = self._on_memory_expired
        memory.on_evict = self._on_evicted

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Check Redis once (a dead Redis at start-up means starting in fallback) and start tasks."""
        if self.redis is not None:
            try:
                await self.redis.ping()
                self._set_backend_up(True)
            except StoreUnavailable as exc:
                self._on_redis_failure(exc)
            self._tasks.append(asyncio.create_task(self._recovery_loop(), name="store-recovery"))
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="store-sweep"))

    async def close(self) -> None:
        """Stop background tasks; try once to replay what the journal still holds."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.journal and self.redis is not None and self.breaker.closed:
            with contextlib.suppress(StoreUnavailable):
                await self._replay()
        if self.journal:
            log.warning(
                "closing with %d journalled writes not replayed to Redis", len(self.journal)
            )

    async def __aenter__(self) -> TieredStore:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- key/value API -----------------------------------------------------------------------

    async def get(self, key: str, record: CacheRecorder | None = None) -> StoredValue | None:
        """The live value for `key`, or None; StoreUnavailable if only an unreachable Redis knows.

        `record(tier, hit)` is called for each tier consulted, so callers count hits per tier.
        """
        if not self.memory_bypass:
            value = self.memory.get(key)
            if value is not None:
                if record is not None:
                    record("memory", True)
                return value
        if record is not None:
            record("memory", False)
        return await self.get_uncached(key, record)

    def get_cached(self, key: str) -> StoredValue | None:
        """The memory tier's live value (no I/O, nothing recorded): the hot path's first step.
        On None, continue with `get_uncached`."""
        return None if self.memory_bypass else self.memory.get(key)

    async def get_uncached(
        self, key: str, record: CacheRecorder | None = None
    ) -> StoredValue | None:
        """`get` after a memory miss: the replay journal, then Redis (filling memory)."""
        if self.journal:
            pending = self.journal.get(key)
            if pending is not None:
                return (
                    pending.value
                    if pending.value is not None and pending.value.remaining() > 0
                    else None
                )
        redis = self.redis
        if redis is None:
            return None
        if self.breaker.state != CLOSED:
            raise StoreUnavailable(
                "Redis is unreachable and the memory tier does not hold this key",
                self._retry_after(),
            )
        epoch = self._invalidation_epoch
        try:
            value = await redis.get(key)
        except StoreUnavailable as exc:
            self._on_redis_failure(exc)
            exc.retry_after = self._retry_after()
            raise
        if record is not None:
            record("redis", value is not None)
        if value is not None and epoch == self._invalidation_epoch and not self.memory_bypass:
            # Fill memory unless a newer local write landed while the GET was in flight.
            current = self.memory.peek(key)
            if current is None or current.version <= value.version:
                self.memory.put(key, value)
            else:
                return self.memory.get(key) or value
        return value

    async def set(
        self,
        key: str,
        payload: bytes,
        ttl: float,
        decoded: object | None = None,
        *,
        version: int | None = None,
        expires_at: float | None = None,
    ) -> StoredValue:
        """Write through to Redis; during an outage write to memory and journal it (never raises)."""
        value = StoredValue(
            payload,
            version if version is not None else new_version(),
            expires_at if expires_at is not None else time.time() + ttl,
            decoded,
        )
        if self.redis is not None:
            await self._write(key, value)
        if not self.memory_bypass:
            self._fill(key, value)
        return value

    async def _write(self, key: str, value: StoredValue) -> None:
        if self.breaker.closed:
            try:
                await self.redis.set(key, value)  # type: ignore[union-attr]
                return
            except StoreUnavailable as exc:
                self._on_redis_failure(exc)
        self._journal(ReplayItem(key, value.version, value.expires_at, value))

    async def delete(self, key: str) -> bool:
        """Delete `key`; True if it existed. During an outage, a key neither tier holds raises
        StoreUnavailable (it may exist in Redis)."""
        self._invalidation_epoch += 1
        held = self.memory.pop(key)
        if self.redis is None:
            return held is not None
        version = new_version()
        if self.breaker.closed:
            expires_at = held.expires_at if held is not None else time.time()
            try:
                return await self.redis.delete(key, version, expires_at)
            except StoreUnavailable as exc:
                self._on_redis_failure(exc)
        return self._journal_delete(key, version, held)

    def _journal_delete(self, key: str, version: int, held: StoredValue | None) -> bool:
        pending = self.journal.get(key)
        if held is None and pending is None:
            raise StoreUnavailable(
                "Redis is unreachable and the memory tier does not hold this key",
                self._retry_after(),
            )
        if held is None and pending is not None and pending.value is None:
            return False  # already deleted during this outage
        known = held if held is not None else pending.value  # type: ignore[union-attr]
        self._journal(ReplayItem(key, version, known.expires_at if known else time.time(), None))
        return True

    async def clear_memory(self, prefix: str | None = None) -> int:
        """Drop memory-tier entries (all, or under `prefix`); Redis keeps them. Returns how many."""
        self._invalidation_epoch += 1
        count = self.memory.clear(prefix)
        self._count_invalidations("clear", count)
        return count

    def invalidate(self, key: str, reason: str = "remote") -> bool:
        """Drop one memory entry that may be stale (e.g. changed by another replica)."""
        self._invalidation_epoch += 1
        dropped = self.memory.pop(key) is not None
        if dropped:
            self._count_invalidations(reason, 1)
        return dropped

    def flush_memory(self, reason: str = "flush") -> int:
        """Drop the whole memory tier because its coherence is unknown; returns how many."""
        self._invalidation_epoch += 1
        count = self.memory.clear()
        self._count_invalidations(reason, count)
        return count

    def add_expiry_listener(self, prefix: str, callback: ExpiryCallback) -> None:
        """Call `callback(key, value)` when a memory entry under `prefix` is found expired."""
        self._expiry_listeners.append((prefix, callback))

    # -- status ------------------------------------------------------------------------------

    @property
    def redis_configured(self) -> bool:
        return self.redis is not None

    @property
    def redis_connected(self) -> bool:
        return self.redis is not None and self.breaker.closed

    def status(self) -> StoreStatus:
        return StoreStatus(
            redis_configured=self.redis is not None,
            redis_connected=self.redis_connected,
            redis_latency_ms=None if self.redis is None else _round(self.redis.last_latency_ms),
            breaker_state=self.breaker.state if self.redis is not None else "disabled",
            fallback_active=self.fallback_active,
            fallback_since=self.fallback_since,
            replay_pending=len(self.journal),
            replay_max=self.journal.max_entries,
            replayed=self.journal.replayed,
            replay_dropped=self.journal.dropped,
            failovers=self.failovers,
            memory_entries=len(self.memory),
            memory_bytes=self.memory.bytes,
            memory_max_entries=self.memory.max_entries,
            memory_max_bytes=self.memory.max_bytes,
            evictions=self.memory.evictions,
        )

    # -- internals ---------------------------------------------------------------------------

    def _fill(self, key: str, value: StoredValue) -> StoredValue:
        """Put `value` in memory unless memory already holds a newer version of the key."""
        if self.memory_bypass:
            return value
        current = self.memory.peek(key)
        if current is not None and current.version > value.version:
            return self.memory.get(key) or value  # a newer local write landed meanwhile
        self.memory.put(key, value)
        return value

    def _journal(self, item: ReplayItem) -> None:
        dropped = self.journal.record(item)
        if dropped is None:
            return
        if self._dropped_child is not None:
            self._dropped_child.inc()
        self._outage_drops += 1
        if self._outage_drops == 1:
            message = f"replay journal full ({self.journal.max_entries} entries): dropping the oldest writes"
            log.warning(message)
            self._event("replay_dropped", message, max_entries=self.journal.max_entries)

    def _on_redis_failure(self, exc: StoreUnavailable) -> None:
        self.breaker.failure()
        self._set_backend_up(False)
        if not self.fallback_active:
            self.fallback_active = True
            self.fallback_since = time.time()
            self.failovers += 1
            self._outage_drops = 0
            if self._failovers_child is not None:
                self._failovers_child.inc()
            log.warning("%s: serving from memory, journalling writes", exc)
            self._event("failover", f"{exc}; serving from memory", reason=exc.code)
        self._redis_failed.set()

    def _retry_after(self) -> float:
        return max(1.0, self.breaker.seconds_until_probe())

    async def recover_now(self) -> bool:
        """Probe Redis now instead of at the next interval; True once it answers and the journal
        is replayed (fallback over)."""
        if self.redis is None:
            return False
        if self.breaker.closed and not self.fallback_active:
            return True
        try:
            await self._recover()
        except StoreUnavailable as exc:
            self._on_redis_failure(exc)
        return not self.fallback_active

    async def _recovery_loop(self) -> None:
        while True:
            await self._redis_failed.wait()
            await asyncio.sleep(max(self.breaker.seconds_until_probe(), 0.01))
            if not self.breaker.allow():
                continue
            try:
                await self._recover()
            except StoreUnavailable as exc:
                self._on_redis_failure(exc)
            except Exception:  # a bug here must not end recovery for good
                log.exception("unexpected error while recovering the Redis tier")
                self.breaker.failure()

    async def _recover(self) -> None:
        assert self.redis is not None
        async with self._recover_lock:  # the loop and recover_now() must not replay twice
            if self.breaker.closed and not self.fallback_active:
                return
            await self.redis.ping()
            # Writes go to Redis again from here on; the replay cannot overwrite them (versions).
            self.breaker.success()
            self._set_backend_up(True)
            replayed, skipped = await self._replay()
            if not self.breaker.closed:
                return  # a live write failed during the replay: stay in fallback
            self._redis_failed.clear()
            if self.fallback_active:
                self._fail_back(replayed, skipped)

    async def _replay(self) -> tuple[int, int]:
        assert self.redis is not None
        replayed = skipped = 0
        while self.journal:
            batch = self.journal.peek(REPLAY_BATCH)
            results = await self.redis.replay(batch)
            self.journal.discard(batch)
            written = sum(results)
            replayed += written
            skipped += len(results) - written
            if self._replayed_child is not None:
                self._replayed_child.inc(len(results))
        return replayed, skipped

    def _fail_back(self, replayed: int, skipped: int) -> None:
        since = self.fallback_since or time.time()
        self.fallback_active = False
        self.fallback_since = None
        # Another replica may have changed keys this tier still holds; Redis is the truth again.
        flushed = self.flush_memory("flush")
        drops = self._outage_drops
        message = f"Redis back after {time.time() - since:.1f}s: replayed {replayed}, skipped {skipped} older"
        if drops:
            message += f", {drops} dropped (journal full)"
        log.info(message)
        self._event("replay_done", message, replayed=replayed, skipped=skipped, dropped=drops)
        self._event(
            "failback",
            f"Redis reachable again; memory tier flushed ({flushed} entries)",
            outage_seconds=round(time.time() - since, 3),
        )

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                self.memory.sweep()
            except Exception:
                log.exception("memory-tier sweep failed")

    def _on_memory_expired(self, key: str, value: StoredValue) -> None:
        for prefix, callback in self._expiry_listeners:
            if key.startswith(prefix):
                callback(key, value)

    def _on_evicted(self, count: int) -> None:
        if self._evictions_child is not None:
            self._evictions_child.inc(count)

    def _count_invalidations(self, reason: str, count: int) -> None:
        if count and self._metrics is not None:
            self._invalidation_children[reason].inc(count)

    def _set_backend_up(self, up: bool) -> None:
        if self._backend_up_child is not None:
            self._backend_up_child.set(1 if up else 0)

    def _event(self, type: str, message: str, **details: object) -> None:
        if self.events is not None:
            self.events.record(type, message, **details)

    def _bind_metrics(self, metrics: Metrics | None) -> None:
        """Pre-bind children; gauges that mirror in-process state read it at scrape time (no I/O)."""
        self._evictions_child = metrics.cache_evictions.labels("memory") if metrics else None
        self._failovers_child = metrics.store_failovers if metrics else None
        self._replayed_child = metrics.store_replayed if metrics else None
        self._dropped_child = metrics.store_replay_dropped if metrics else None
        self._backend_up_child = metrics.store_backend_up.labels("redis") if metrics else None
        self._invalidation_children = (
            {reason: metrics.cache_invalidations.labels(reason) for reason in INVALIDATION_REASONS}
            if metrics
            else {}
        )
        if metrics is None:
            return
        metrics.memory_tier_entries.set_function(lambda: len(self.memory))
        metrics.memory_tier_bytes.set_function(lambda: self.memory.bytes)
        metrics.memory_tier_max_entries.set_function(lambda: self.memory.max_entries)
        metrics.memory_tier_max_bytes.set_function(lambda: self.memory.max_bytes)
        metrics.store_fallback_active.set_function(lambda: 1 if self.fallback_active else 0)
        metrics.store_replay_pending.set_function(lambda: len(self.journal))
        metrics.store_replay_max.set_function(lambda: self.journal.max_entries)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
