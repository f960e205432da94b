"""The tiered store: a memory tier in front of Redis, with fallback, failback and replay.

Composes a `MemoryStore` and an optional `RedisStore` (no inheritance). Keys are logical
(`s:{id}`, `figma:...`); the Redis tier prepends the configured prefix.

- Reads: memory, then the replay journal, then Redis (read-through; the memory copy never outlives
  the key's Redis TTL, because both come from the value's own `expires_at`).
- Writes: write-through. When Redis fails, the breaker opens, the store falls back to memory and
  journals every write (callers see no error); a miss that only Redis could answer raises
  `StoreUnavailable` (HTTP 503 + Retry-After), never a false "not found".
- Recovery (`recovery.Recovery`): a background task probes Redis every `retry_interval`; once it
  answers, the fleet's data epoch is checked (a Redis that lost its data is re-seeded from memory),
  the journal is replayed with version checks done inside Redis, and the memory tier is flushed (it
  may hold copies another replica changed meanwhile) before fallback ends. A miss of a session is
  final only when the whole fleet has settled (else 503).
- Time: expiry and versions follow the fleet clock (`exporter.core.clock`, Redis's time), never the
  host's wall clock.

    async with TieredStore(MemoryStore(1000, 1 << 20), RedisStore(client)) as store:
        await store.set("s:{abc}", b"{}", ttl=60)
        (await store.get("s:{abc}")).payload
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from exporter.core.clock import FleetClock
from exporter.core.errors import StoreUnavailable
from exporter.core.event_log import EventLog
from exporter.core.loop_lag import LoopLag
from exporter.core.metrics import Metrics
from exporter.core.tasks import cancel_and_wait
from exporter.store.breaker import CircuitBreaker
from exporter.store.contract import CacheRecorder, StoredValue, StoreStatus
from exporter.store.failover import Failover
from exporter.store.journal import Journal, ReplayJournal
from exporter.store.memory_store import MemoryStore
from exporter.store.memory_tier import MemoryTier
from exporter.store.parking import Parking
from exporter.store.read_path import ReadPath
from exporter.store.recent_writes import RecentWrites
from exporter.store.recovery import RESEND_WINDOW, FleetMemory, Recovery
from exporter.store.recovery_side import RecoverySide
from exporter.store.redis_calls import RedisCalls
from exporter.store.redis_store import RedisStore
from exporter.store.store_reporting import StoreCounters, bind_store_gauges, store_status
from exporter.store.tracked_redis import TrackedRedis
from exporter.store.write_path import WritePath

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0
ExpiryCallback = Callable[[str, StoredValue], None]
T = TypeVar("T")


def new_replica_id() -> str:
    """This replica's name in the fleet's records (see fleet.py)."""
    return secrets.token_hex(8)


class TieredStore:
    def __init__(
        self,
        memory: MemoryStore,
        redis: RedisStore | None = None,
        *,
        breaker: CircuitBreaker | None = None,
        replay_max_entries: int = 10_000,
        journal: Journal | None = None,
        close_timeout: float = 5.0,
        metrics: Metrics,
        events: EventLog | None = None,
        sweep_interval: float = SWEEP_INTERVAL,
        authoritative_prefixes: tuple[str, ...] = ("s:",),
        tracked_prefixes: tuple[str, ...] = (),
        clock: FleetClock | None = None,
        resend_after_switch: bool = False,
        replica_id: str | None = None,
        fleet_members: FleetMemory | None = None,
    ) -> None:
        """`authoritative_prefixes`: keys whose misses must be authoritative (sessions; not
        cached Figma responses): after an outage a miss may be another replica's not-yet-replayed
        write. `tracked_prefixes`: keys the coherence tracks (their own writes echo).
        `resend_after_switch`: Sentinel or Cluster, whose master switches may lose the last
        writes the old master took (see `recent_writes`)."""
        self.memory = memory
        self.redis = redis
        self.clock = clock or FleetClock()
        memory.wall = self.clock.now  # expiry follows the fleet clock too
        self.breaker = breaker or CircuitBreaker(retry_interval=0.5)
        # Durable (--journal-dir) or, without one, in this process only.
        self.journal: Journal = (
            journal if journal is not None else ReplayJournal(replay_max_entries)
        )
        self.close_timeout = close_timeout
        self.sweep_interval = sweep_interval
        self.replica_id = replica_id or new_replica_id()
        self.tier = MemoryTier(
            memory,
            self.clock,
            StoreCounters(metrics),
            redis_backed=redis is not None,
            authoritative_prefixes=authoritative_prefixes,
            tracked_prefixes=tracked_prefixes,
        )
        # The hot path's first step: `reads.get(key)` (no I/O, nothing recorded; on None,
        # continue with `confirmed`, then `get_uncached`). Compilable (see speedups).
        self.reads = self.tier.reads
        self.guard = self.tier.guard
        self.loop_lag = LoopLag()
        # Outages, refusals, the fleet, parked own writes and the write path: None without
        # Redis (then memory is the only tier, and there is nothing to recover).
        self.recovery: Recovery | None = None
        self.calls: RedisCalls | None = None
        self.parking: Parking | None = None
        self.read_path: ReadPath | None = None
        self.writes: WritePath | None = None
        self.tracked: TrackedRedis | None = None
        if redis is not None:
            self._connect(redis, metrics, events, resend_after_switch, fleet_members)
        self._expiry_listeners: list[tuple[str, ExpiryCallback]] = []
        self._tasks: list[asyncio.Task[None]] = []
        bind_store_gauges(
            metrics, memory, self.journal, fallback_active=lambda: self.fallback_active
        )
        memory.listen(self._on_memory_expired, self.tier.counters.evicted)

    def _connect(
        self,
        redis: RedisStore,
        metrics: Metrics,
        events: EventLog | None,
        resend_after_switch: bool,
        fleet_members: FleetMemory | None,
    ) -> None:
        self.calls = RedisCalls(redis, self.loop_lag)
        side = RecoverySide(
            self.tier,
            self.calls,
            fallback_active=lambda: self.fallback_active,
            park=self._park,
        )
        self.recovery = Recovery(
            redis,
            side,
            self.journal,
            replica_id=self.replica_id,
            clock=self.clock,
            breaker=self.breaker,
            metrics=metrics,
            events=events,
            recent=RecentWrites(RESEND_WINDOW) if resend_after_switch else None,
            members=fleet_members,
        )
        self.tracked = TrackedRedis(redis)
        shared = (self.tier, redis, self.calls, self.recovery, self.journal, self.tracked)
        self.parking = Parking(*shared)
        self.read_path = ReadPath(*shared)
        self.writes = WritePath(*shared, self.parking)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Check Redis once (dead at start-up: start in fallback) and start the tasks."""
        if self.recovery is not None:
            await self.recovery.start()
            self._tasks.append(asyncio.create_task(self.loop_lag.run(), name="store-loop-lag"))
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="store-sweep"))

    async def close(self) -> None:
        """Refuse further writes, stop background tasks, try (for at most `close_timeout`) to
        replay what the journal holds, and keep the rest in it for the next start."""
        if self.writes is not None:
            self.writes.closing = True
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        if self.parking is not None:
            await self.parking.close()
        if self.recovery is not None:
            await self.recovery.stop()
            with contextlib.suppress(StoreUnavailable, TimeoutError):
                async with asyncio.timeout(self.close_timeout):
                    if await self.recovery.recover_now():
                        await self.recovery.leave()
        pending = len(self.journal)
        await self.journal.close()
        if pending and self.journal.durable:
            log.warning("closing with %d journalled writes kept for the next start", pending)
        elif pending:
            log.error(
                "closing with %d journalled writes not replayed: lost (no --journal-dir)", pending
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
        if not self.reads.bypass:
            value = self.reads.get(key)
            if value is None and self.reads.parked:
                value = await self.confirmed(key)
            if value is not None:
                if record is not None:
                    record("memory", True)
                return value
        if record is not None:
            record("memory", False)
        return await self.get_uncached(key, record)

    async def get_uncached(
        self, key: str, record: CacheRecorder | None = None
    ) -> StoredValue | None:
        """`get` after a memory miss: the replay journal, then Redis (filling memory)."""
        if self.read_path is None:
            return None  # memory is the only tier
        return await self.read_path.get(key, record)

    async def set(
        self,
        key: str,
        payload: bytes,
        ttl: float,
        decoded: object | None = None,
        *,
        version: int | None = None,
        expires_at: float | None = None,
        replace: bool = False,
        sole: bool = False,
        after: int = 0,
    ) -> StoredValue:
        """Write through to Redis; in an outage (or while Redis refuses writes) write to memory
        and journal it. Raises StoreBusy when no connection was free in time (nothing written),
        and with `replace` (an update) SessionNotFound if the key was deleted meanwhile. `sole`:
        a new random key nobody else knows yet, so no echo of it can come (see `invalidate`).
        `after`: the version this write replaces (an update's is always newer)."""
        value = StoredValue(
            payload,
            version if version is not None else self.clock.version(after),
            expires_at if expires_at is not None else self.clock.now() + ttl,
            decoded,
        )
        if self.writes is None:
            self.tier.fill(key, value)
            return value
        return await self.writes.set(key, value, replace=replace, sole=sole, coherent=self.coherent)

    async def delete(self, key: str) -> bool:
        """Delete `key`; True if it existed. During an outage, a key neither tier holds raises
        StoreUnavailable (it may exist in Redis)."""
        with self.guard.deleting(key):
            held = self.memory.pop(key)
            if self.writes is None:
                return held is not None
            return await self.writes.delete(key, held, self.get_uncached)

    async def clear_memory(self, prefix: str | None = None) -> int:
        """Drop memory-tier entries (all, or under `prefix`) that exist elsewhere too (Redis);
        the only copies (memory-only sessions, journalled writes) stay. Returns how many."""
        return self.tier.clear(prefix)

    def _park(self, key: str, value: StoredValue) -> None:
        if self.parking is not None:
            self.parking.park(key, value)

    def invalidate(self, key: str, reason: str = "remote") -> str:
        """Drop one memory entry that may be stale (changed by another replica); what was done:
        "dropped", "absent" (not held) or "checked".

        An invalidation of a key we wrote may be its echo (see `WriteGuard.expect_echo`), or
        another replica's write that landed just after ours: the message names only the key.
        So an echo's entry is *parked* (see parking.py): it stays in memory unserved until one
        GET shows Redis still holds our version. Echoes are not counted as remote
        invalidations; a check that finds another value in Redis is.
        """
        self.guard.invalidated(key)
        echo = self.guard.is_echo(key)
        if echo or self.fallback_active:
            # During a fallback the entry may be all this replica has of the key (and replayed
            # writes echo too): check it rather than drop it. Failback flushes the tier anyway.
            if echo:
                self.guard.echo_arrived(key)
            held = self.memory.peek(key)
            if held is not None and self.parking is not None:
                self.parking.park(key, held)
                return "checked"
            return "absent"
        return "dropped" if self.tier.changed_elsewhere(key, reason) else "absent"

    def is_parked(self, key: str) -> bool:
        """Whether `key` holds our own write awaiting its check (see `invalidate`)."""
        return key in self.reads.parked

    async def confirmed(self, key: str) -> StoredValue | None:
        """After a memory miss: the memory value once a parked own write is confirmed (about
        one Redis round trip), else None (nothing parked, or Redis holds another value)."""
        if self.parking is None:
            return self.reads.get(key)
        return await self.parking.confirmed(key)

    def add_expiry_listener(self, prefix: str, callback: ExpiryCallback) -> None:
        """Call `callback(key, value)` when a memory entry under `prefix` is found expired."""
        self._expiry_listeners.append((prefix, callback))

    # -- coherence (driven by coherence.Coherence) ---------------------------------------------

    @property
    def coherent(self) -> bool:
        """False while invalidation tracking is down (see coherence.py)."""
        return self.tier.coherent

    # -- Redis's state, as recovery tracks it ---------------------------------------------------

    def report_unavailable(self, exc: StoreUnavailable) -> None:
        """Something other than a store call found Redis unreachable: fall back now."""
        if self.recovery is not None:
            self.recovery.report_unavailable(exc)

    async def master_switched(self, reason: str) -> None:
        """The master moved (see `sentinel_watch`, `cluster_watch`)."""
        if self.recovery is not None:
            await self.recovery.master_switched(reason)

    async def recover_now(self) -> bool:
        """Probe Redis now instead of at the next interval; True once it answers and the journal
        is replayed (fallback over, writes accepted)."""
        return self.recovery is not None and await self.recovery.recover_now()

    def flush_memory(self, reason: str = "flush", *, keep_for_reseed: bool = True) -> int:
        """See `MemoryTier.flush`."""
        return self.tier.flush(reason, keep_for_reseed=keep_for_reseed)

    # -- status ------------------------------------------------------------------------------

    @property
    def failover(self) -> Failover:
        """The outage state (pure): fallback, refusal, their counts and starts."""
        return self.recovery.failover if self.recovery is not None else _NO_OUTAGE

    @property
    def fallback_active(self) -> bool:
        """Redis unreachable: memory and the journal serve, writes are journalled."""
        return self.failover.fallback_active

    @property
    def writes_refused(self) -> str | None:
        """Why Redis answers but refuses writes (readonly, oom, misconf, noreplicas), or None:
        reads still go to Redis, writes are journalled until one is accepted again."""
        return self.failover.writes_refused

    @property
    def redis_connected(self) -> bool:
        return self.redis is not None and self.breaker.closed

    def status(self) -> StoreStatus:
        return store_status(self.memory, self.journal, self.failover, self.redis, self.breaker)

    # -- internals ---------------------------------------------------------------------------

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


# Without Redis there is never an outage.
_NO_OUTAGE = Failover()
