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
- Time: expiry and versions follow the fleet clock (`exporter.clock`, Redis's time), never the
  host's wall clock.

    async with TieredStore(MemoryStore(1000, 1 << 20), RedisStore(client)) as store:
        await store.set("s:{abc}", b"{}", ttl=60)
        (await store.get("s:{abc}")).payload
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from functools import partial
from types import TracebackType
from typing import TypeVar

from exporter.clock import FleetClock
from exporter.errors import (
    SessionNotFound,
    StoreBusy,
    StoreFull,
    StoreTimeout,
    StoreUnavailable,
)
from exporter.events import EventLog
from exporter.loop_lag import LoopLag
from exporter.metrics import INVALIDATION_REASONS, Metrics
from exporter.sessions.breaker import CLOSED, CircuitBreaker
from exporter.sessions.failover import Failover
from exporter.sessions.journal import Journal, ReplayJournal
from exporter.sessions.memory_reads import MemoryReads
from exporter.sessions.memory_store import MemoryStore
from exporter.sessions.recent_writes import RecentWrites
from exporter.sessions.recovery import RESEND_WINDOW, FleetMemory, Recovery
from exporter.sessions.redis_store import TOMBSTONE, RedisStore
from exporter.sessions.reserve import Reserve
from exporter.sessions.store import CacheRecorder, ReplayItem, StoredValue, StoreStatus
from exporter.sessions.write_guard import WriteGuard
from exporter.tasks import cancel_and_wait, raise_if_cancelled

log = logging.getLogger(__name__)

# Re-checks of a parked own write before giving up on it (the next read then goes to Redis).
PARK_CHECKS = 3
PARK_BATCH = 256
# The longest a read waits for its key's parked write to be checked (rounds are one pipeline).
PARK_WAIT = 0.5
SWEEP_INTERVAL = 1.0
# How long a delete is remembered when the session's expiry is unknown here (see `delete`).
TOMBSTONE_GUESS = 86_400.0
# A PING that timed out while our own loop stalled proves nothing: it is sent again, this often
# in all, before the request gets StoreBusy (a stall under it each time: we cannot tell).
PING_ATTEMPTS = 3
TOO_BUSY = "this process was too busy to hear Redis in time"
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
        """`resend_after_switch`: Sentinel, whose master switches may lose the last writes the
        old master took (see `recent_writes`)."""
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
        self._closing = False
        self.events = events
        self.sweep_interval = sweep_interval
        # Keys whose misses must be authoritative (sessions; not cached Figma responses): after
        # an outage a miss may be another replica's not-yet-replayed write.
        self.authoritative_prefixes = authoritative_prefixes
        self.replica_id = replica_id or new_replica_id()
        self._ping_probe: asyncio.Future[bool] | None = None
        self.loop_lag = LoopLag()
        # Outages, refusals, the fleet: None without Redis (nothing to recover).
        self.recovery: Recovery | None = None
        if redis is not None:
            self.recovery = Recovery(
                redis,
                self,
                self.journal,
                replica_id=self.replica_id,
                clock=self.clock,
                breaker=self.breaker,
                metrics=metrics,
                events=events,
                recent=RecentWrites(RESEND_WINDOW) if resend_after_switch else None,
                members=fleet_members,
            )
        # What memory may answer: `reads.get(key)` is the hot path's first step (no I/O, nothing
        # recorded; on None, continue with `confirmed`, then `get_uncached`). Compilable. While
        # `reads.bypass`, reads skip the memory tier and writes do not fill it (coherence unknown).
        self.reads = MemoryReads(memory)
        # Which calls in flight may still fill memory, and the echoes of our own writes (of keys
        # under `tracked_prefixes`, those the coherence tracks).
        self.guard = WriteGuard(tracked_prefixes)
        # Coherence (see coherence.py): False while invalidation tracking is down.
        self.coherent = True
        # Own writes invalidated (most likely by their echo): they stay in memory but are not
        # served until a GET shows Redis still holds them (batched: one checker task).
        # key -> (our value, the tier's epoch when parked, checks left); shared with `reads`
        self._parked = self.reads.parked
        self._checker: asyncio.Task[None] | None = None
        self._check_round: asyncio.Future[None] | None = None
        self._expiry_listeners: list[tuple[str, ExpiryCallback]] = []
        # What a re-seed needs beyond memory (see reserve.py): sessions dropped for coherence's
        # sake, and the deletes made here.
        self._reserve = Reserve(memory.max_entries, memory.max_bytes)
        self._tasks: list[asyncio.Task[None]] = []
        self._bind_metrics(metrics)
        memory.listen(self._on_memory_expired, self._on_evicted)

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
        self._closing = True
        await cancel_and_wait(*self._tasks, self._checker)
        self._tasks.clear()
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
            if value is None and self._parked:
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
        if self.journal:
            pending = self.journal.get(key)
            if pending is not None:
                return (
                    pending.value
                    if pending.value is not None and pending.value.remaining(self.clock.now()) > 0
                    else None
                )
        redis, recovery = self.redis, self.recovery
        if redis is None or recovery is None:
            return None
        if self.breaker.state != CLOSED:
            raise StoreUnavailable(
                "Redis is unreachable and the memory tier does not hold this key",
                self._retry_after(),
            )
        authoritative = key.startswith(self.authoritative_prefixes)
        token, read_at = self.guard.watch(key), self.clock.now()
        try:
            value = await self.redis_call(lambda: redis.get(key))
        except StoreBusy:
            raise  # backpressure for this request only: Redis is fine
        except StoreUnavailable as exc:
            recovery.failed(exc)
            if not self.reads.bypass:  # bypassed for coherence only: the fallback serves memory
                held = self.memory.get(key)
                if held is not None:
                    return held
            exc.retry_after = self._retry_after()
            raise
        finally:
            clean = self.guard.unwatch(key, token)
        if value is TOMBSTONE:
            value = None  # deleted: a final answer
        elif value is None and authoritative:
            await recovery.check_miss(read_at)
        if record is not None:
            record("redis", value is not None)
        if value is not None and clean and not self.reads.bypass:
            # Fill memory unless a newer local write landed while the GET was in flight.
            current = self.memory.peek(key)
            if current is None or current.version <= value.version:
                self.memory.put(key, value)
                if self._reserve:
                    self._reserve.drop(key)  # held in memory again
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
        replace: bool = False,
        sole: bool = False,
        after: int = 0,
    ) -> StoredValue:
        """Write through to Redis; in an outage (or while Redis refuses writes) write to memory
        and journal it. Raises StoreBusy when no connection was free in time (nothing written),
        and with `replace` (an update) SessionNotFound if the key was deleted meanwhile. `sole`:
        a new random key nobody else knows yet, so its echo needs no check (see `invalidate`).
        `after`: the version this write replaces (an update's is always newer)."""
        value = StoredValue(
            payload,
            version if version is not None else self.clock.version(after),
            expires_at if expires_at is not None else self.clock.now() + ttl,
            decoded,
        )
        if self.redis is not None:
            token = self.guard.watch(key)
            echo = self.guard.expect_echo(key, self.coherent, sole=sole)
            try:
                written = await self._write(key, value, replace)
            except BaseException:
                if echo:
                    self.guard.echo_arrived(key)
                raise
            finally:
                clean = self.guard.unwatch(key, token)
            if echo and not written:
                self.guard.echo_arrived(key)  # journalled: nothing was sent, nothing will echo
            # Our own write goes to memory even while the tier is bypassed (tracking lost): if
            # Redis turns out to be down, the fallback serves it; if tracking comes back instead,
            # the tier is flushed before it serves again. A tier full of journalled writes has
            # no room for it: the journal, read first, serves it then.
            with contextlib.suppress(StoreFull):
                self._fill(key, value, own=True)
            if self._reserve:
                self._reserve.drop(key)  # superseded by this write
            if not clean:
                # Invalidated while the write was in flight: by its own echo, or by another
                # replica's write landing just after it. Which landed last is unknown: hold ours
                # in memory, unserved until Redis confirms it.
                self._park(key, value)
            return value
        self._fill(key, value)
        return value

    async def _write(self, key: str, value: StoredValue, replace: bool) -> bool:
        """True if written to Redis, False if journalled for replay."""
        redis, recovery = self.redis, self.recovery
        assert redis is not None and recovery is not None
        item = ReplayItem(key, value.version, value.expires_at, value)
        if self.breaker.closed and recovery.writes_refused is None:
            switches = recovery.switches
            try:
                written = await self.redis_call(lambda: redis.set(key, value, replace=replace))
            except StoreBusy:
                raise
            except StoreUnavailable as exc:
                recovery.store_error(exc)
            else:
                if not written:
                    self.memory.pop(key)
                    raise SessionNotFound("deleted")
                recovery.acknowledged(item, switches)
                return True
        if self._closing:
            raise StoreUnavailable("shutting down: writes are no longer accepted", 1.0)
        await self._journal(item)
        return False

    async def delete(self, key: str) -> bool:
        """Delete `key`; True if it existed. During an outage, a key neither tier holds raises
        StoreUnavailable (it may exist in Redis)."""
        self.guard.invalidated(key)
        held = self.memory.pop(key)
        if self.redis is None:
            return held is not None
        if self._reserve:
            self._reserve.drop(key)
        recovery = self.recovery
        assert recovery is not None
        if self.writes_refused is not None and held is None and self.breaker.closed:
            held = await self.get_uncached(key)  # Redis still answers reads: does it exist?
            self.memory.pop(key)  # that read filled memory: a deleted session is not held
            if held is None and not self.journal.get(key):
                return False
        version = self.clock.version(held.version if held is not None else 0)
        if self.breaker.closed and self.writes_refused is None:
            expires_at = held.expires_at if held is not None else self.clock.now()
            redis = self.redis
            retried: list[bool] = []
            switches, deleting_at = recovery.switches, self.clock.now()

            async def attempt() -> float | None:
                retried.append(True)
                return await redis.delete(key, version, expires_at)

            try:
                until = await self.redis_call(attempt)
            except StoreBusy:
                raise
            except StoreUnavailable as exc:
                recovery.store_error(exc)
            else:
                if until is None and len(retried) > 1:
                    # A retry found the tombstone its first attempt left: deleted, its expiry
                    # unknown here (held: the session's own; else a day, to be safe).
                    until = expires_at if held is not None else deleting_at + TOMBSTONE_GUESS
                if until is not None:
                    tombstone = ReplayItem(key, version, until, None)
                    recovery.acknowledged(tombstone, switches)
                    self._reserve.keep(tombstone)  # a Redis that loses it must get it again
                elif key.startswith(self.authoritative_prefixes):
                    await recovery.check_miss(deleting_at)
                return until is not None
        return await self._journal_delete(key, version, held)

    async def _journal_delete(self, key: str, version: int, held: StoredValue | None) -> bool:
        pending = self.journal.get(key)
        if held is None and pending is None:
            raise StoreUnavailable(
                "Redis is unreachable and the memory tier does not hold this key",
                self._retry_after(),
            )
        if held is None and pending is not None and pending.value is None:
            return False  # already deleted during this outage
        known = held if held is not None else pending.value  # type: ignore[union-attr]
        expires_at = known.expires_at if known else self.clock.now()
        tombstone = ReplayItem(key, version, expires_at, None)
        await self._journal(tombstone)
        self._reserve.keep(tombstone)  # a Redis that loses it must get it again
        return True

    async def clear_memory(self, prefix: str | None = None) -> int:
        """Drop memory-tier entries (all, or under `prefix`) that exist elsewhere too (Redis);
        the only copies (memory-only sessions, journalled writes) stay. Returns how many."""
        self.guard.invalidate_all()
        count = self.memory.clear(prefix, keep_pinned=True)
        self._count_invalidations("clear", count)
        return count

    def invalidate(self, key: str, reason: str = "remote") -> bool:
        """Drop one memory entry that may be stale (e.g. changed by another replica).

        An invalidation matching one of our own writes is most likely its echo, but Redis reports
        a key once per event-loop cycle, so it may also cover another replica's write that landed
        just after ours. So an echo's entry is *parked*: it stays in memory unserved until one GET
        shows Redis still holds our version (reads arriving meanwhile wait for that rather than
        reading Redis themselves). Echoes are not counted as remote invalidations; a check that
        finds another value in Redis is. The echo of a `sole` write covers nothing else: it is
        consumed, and the entry keeps serving.
        """
        if self.guard.is_sole_echo(key):
            self.guard.echo_arrived(key)
            return False
        self.guard.invalidated(key)
        echo = self.guard.is_echo(key)
        if echo or self.fallback_active:
            # During a fallback the entry may be all this replica has of the key (and replayed
            # writes echo too): check it rather than drop it. Failback flushes the tier anyway.
            if echo:
                self.guard.echo_arrived(key)
            held = self.memory.peek(key)
            if held is not None:
                self._park(key, held)
            return False
        dropped = self.memory.pop(key) is not None
        if self._reserve:
            self._reserve.changed_elsewhere(key)
        if dropped:
            self._count_invalidations(reason, 1)
        return dropped

    def is_parked(self, key: str) -> bool:
        """Whether `key` holds our own write awaiting its check (see `invalidate`)."""
        return key in self._parked

    async def confirmed(self, key: str) -> StoredValue | None:
        """After a memory miss: the memory value once a parked own write is confirmed (a wait of
        about one Redis round trip), else None (nothing parked, or Redis holds another value)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PARK_WAIT
        while key in self._parked and loop.time() < deadline:
            check_round = self._check_round
            if check_round is None:
                # Between rounds (about to start one, or pausing after an unreadable Redis):
                # a fixed number of yields could give up before the next round, and a miss
                # here becomes a 503 in an outage.
                await asyncio.sleep(0.001)
            else:
                await asyncio.shield(check_round)
        return self.reads.get(key)

    def flush_memory(self, reason: str = "flush", *, keep_for_reseed: bool = True) -> int:
        """Drop the whole memory tier because its coherence is unknown; returns how many.

        The sessions it held are kept aside, never served (`keep_for_reseed`): for a Redis
        without persistence they may be the only copies left, and a later restart re-seeds from
        them (version-checked, so a stale one loses to a newer copy). Not after an operator's
        FLUSHALL, which is respected."""
        self.guard.invalidate_all()
        if keep_for_reseed and self.redis is not None:
            for item in self._held_in_memory().values():
                self._reserve.keep(item)
        else:
            self._reserve.clear()
        count = self.memory.clear()
        self._count_invalidations(reason, count)
        return count

    # -- coherence (driven by coherence.Coherence) ---------------------------------------------

    def coherence_lost(self) -> None:
        """Invalidations may be missed from now on: stop reading and filling memory at once.
        (During a Redis outage the fallback still serves from memory, tracked or not.)"""
        self.coherent = False
        self.guard.invalidate_all()
        self.guard.forget_echoes()
        self._update_bypass()

    def coherence_restored(self) -> None:
        """Tracking is active again: memory may serve and fill; reads begun before may not fill.
        Own writes kept while untracked are dropped (a fallback in progress keeps them: its
        failback flushes the tier anyway)."""
        self.guard.invalidate_all()
        self.guard.forget_echoes()
        if not self.coherent and not self.fallback_active:
            self.flush_memory("tracking_lost")
        self.coherent = True
        self._update_bypass()

    async def drop_untracked(self) -> int:
        """Flush memory after tracking was lost while Redis stayed reachable; returns how many.
        The fleet is synced first: a lost connection may be a Redis that restarted without its
        data, and what memory holds is then re-seeded before it is dropped."""
        if self.recovery is not None:
            try:
                await self.recovery.sync()
            except StoreUnavailable as exc:
                self.report_unavailable(exc)
        if self.coherent or self.fallback_active:
            return 0  # tracking is back, or the fallback serves memory (flushed at failback)
        return self.flush_memory("tracking_lost")

    def report_unavailable(self, exc: StoreUnavailable) -> None:
        """Something other than a store call found Redis unreachable: fall back now."""
        if self.recovery is not None:
            self.recovery.report_unavailable(exc)

    async def master_switched(self, reason: str) -> None:
        """Sentinel announced a new master (see `sentinel_watch`)."""
        if self.recovery is not None:
            await self.recovery.master_switched(reason)

    # -- what recovery asks of the memory tier (recovery.StoreSide) -----------------------------

    def held_sessions(self) -> list[ReplayItem]:
        """What this replica knows of its sessions, to re-seed Redis with: the live values in
        memory, and from the reserve what memory stopped serving and the deletes made here."""
        items = self._reserve.live(self.clock.now())
        for key, item in self._held_in_memory().items():
            kept = items.get(key)
            if kept is None or item.version > kept.version:  # the newest; a delete on a tie
                items[key] = item
        return list(items.values())

    def _held_in_memory(self) -> dict[str, ReplayItem]:
        now, held = self.clock.now(), self.memory.keys()
        return {
            key: ReplayItem(key, value.version, value.expires_at, value)
            for key in held
            if key.startswith(self.authoritative_prefixes)
            and (value := self.memory.peek(key)) is not None
            and value.remaining(now) > 0
        }

    def expect_echoes(self, items: list[ReplayItem]) -> list[bool]:
        """Replayed writes echo like our own writes: so expected, they are checked, not taken
        for another replica's (which would drop what the reserve keeps for a re-seed)."""
        return [self.guard.expect_echo(item.key, self.coherent) for item in items]

    def echoes_missed(
        self, items: list[ReplayItem], expected: list[bool], sent: list[bool]
    ) -> None:
        """Replayed writes skipped as older (or never sent) echo nothing."""
        for item, echo, written in zip(items, expected, sent, strict=True):
            if echo and not written:
                self.guard.echo_arrived(item.key)

    def replayed(self, key: str) -> None:
        """The journal no longer holds `key`: its memory copy may be evicted again."""
        self.memory.unpin(key)

    def fallback_changed(self) -> None:
        self._update_bypass()

    def add_expiry_listener(self, prefix: str, callback: ExpiryCallback) -> None:
        """Call `callback(key, value)` when a memory entry under `prefix` is found expired."""
        self._expiry_listeners.append((prefix, callback))

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
    def fallback_since(self) -> float | None:
        return self.failover.fallback_since

    @property
    def failovers(self) -> int:
        return self.failover.failovers

    @property
    def writes_refused(self) -> str | None:
        """Why Redis answers but refuses writes (readonly, oom, misconf, noreplicas), or None:
        reads still go to Redis, writes are journalled until one is accepted again."""
        return self.failover.writes_refused

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
            writes_refused=self.writes_refused,
            writes_refused_since=self.failover.writes_refused_since,
            memory_entries=len(self.memory),
            memory_bytes=self.memory.bytes,
            memory_max_entries=self.memory.max_entries,
            memory_max_bytes=self.memory.max_bytes,
            evictions=self.memory.evictions,
        )

    # -- internals ---------------------------------------------------------------------------

    def _park(self, key: str, ours: StoredValue) -> None:
        """Stop serving our own write from memory until a GET shows Redis still holds it.
        Not while Redis is unreadable (breaker open): there is nothing to check against, and
        our write is what the fallback serves (the failback flushes the tier anyway)."""
        if self.redis is None or self.reads.bypass or not self.breaker.closed:
            return
        parked = self._parked.get(key)
        if parked is not None and parked[0].version > ours.version:
            ours = parked[0]
        # (Re-)parking restarts the count: a check in flight may predate this invalidation, and
        # its key's watch then tells it to look again.
        self._parked[key] = (ours, self.guard.epoch, PARK_CHECKS)
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._check_parked(), name="store-park-check")

    async def _check_parked(self) -> None:
        """Check parked own writes against Redis: one pipeline of GETs per round."""
        assert self.redis is not None
        while self._parked:
            raise_if_cancelled()
            check_round = self._check_round = asyncio.get_running_loop().create_future()
            try:
                keys = list(itertools.islice(self._parked, PARK_BATCH))
                tokens = [self.guard.watch(key) for key in keys]
                values: list[StoredValue | None] | None = None
                try:
                    if self.breaker.closed:  # else a fallback: our own writes are what we serve
                        values = await self.redis_call(partial(self.redis.get_many, keys))
                except StoreUnavailable as exc:
                    self.report_unavailable(exc)  # as any failed call: fallback serves our writes
                finally:
                    cleans = [self.guard.unwatch(k, t) for k, t in zip(keys, tokens, strict=True)]
                for index, key in enumerate(keys):
                    current = values[index] if values is not None else None
                    self._settle_parked(key, current, cleans[index], values is not None)
            finally:
                self._check_round = None
                check_round.set_result(None)
            if values is None:
                await asyncio.sleep(0.01)

    def _settle_parked(
        self, key: str, current: StoredValue | None, clean: bool, read: bool
    ) -> None:
        parked = self._parked.get(key)
        if parked is None:
            return
        ours, epoch, left = parked
        if epoch != self.guard.epoch:
            # The tier was cleared (the entry went with it) or coherence changed (then memory is
            # bypassed, flushed, or serving as the fallback, which needs our own write).
            del self._parked[key]
            return
        if not read and self.fallback_active:
            del self._parked[key]
            return  # during a fallback our own write is what this replica serves
        if (not read or not clean) and left > 1:
            self._parked[key] = (ours, epoch, left - 1)  # invalidated again meanwhile: look again
            return
        del self._parked[key]
        if not read:
            self._unhold(key)  # Redis unreadable yet no fallback: let reads go there
            return
        if not clean:
            self.memory.pop(key)  # changed again elsewhere meanwhile: that replica holds it
        elif current is not None and current.version == ours.version:
            pass  # Redis holds ours: serve it again (decoded already)
        elif self.journal.get(key) is not None:
            pass  # ours awaits replay, which settles it by version
        else:
            self._count_invalidations("remote", 1)  # another replica's write landed after ours
            newer = current is not None and current.version > ours.version
            if newer and current is not None and not self.reads.bypass:
                self.memory.put(key, current)
            else:
                self._unhold(key)  # or Redis lost ours (a restart): a re-seed may need it

    def _unhold(self, key: str) -> bool:
        """Stop serving `key` from memory, keeping a session's value aside for a re-seed (see
        `flush_memory`); whether memory held it."""
        value = self.memory.pop(key)
        if value is None:
            return False
        if self.redis is not None and key.startswith(self.authoritative_prefixes):
            self._reserve.keep(ReplayItem(key, value.version, value.expires_at, value))
        return True

    def _update_bypass(self) -> None:
        self.reads.bypass = not self.coherent and not self.fallback_active

    def _fill(self, key: str, value: StoredValue, *, own: bool = False) -> StoredValue:
        """Put `value` in memory unless memory already holds a newer version of the key (while
        bypassed, only our `own` writes: see `set`)."""
        if self.reads.bypass and not own:
            return value
        current = self.memory.peek(key)
        if current is not None and current.version > value.version:
            return self.memory.get(key) or value  # a newer local write landed meanwhile
        self.memory.put(key, value)
        return value

    async def _journal(self, item: ReplayItem) -> None:
        """Journal a write before it is acknowledged (JournalFull: refused, nothing kept), and
        pin its memory copy: it may be the only one this side of the replay."""
        await self.journal.record(item)
        self.memory.pin(item.key)
        assert self.recovery is not None
        await self.recovery.journalled()

    async def redis_call(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis command (idempotent: writes carry their version). A timeout alone proves
        little under load, so it is checked by one PING shared by all callers: if Redis answers,
        the command is tried once more, and a second timeout counts only if our own loop ran on
        time meanwhile (else it is backpressure for this request, not an outage)."""
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

    def _command_timeout(self) -> float:
        return self.redis.timeout if self.redis is not None else 0.0

    def stalled_since(self, started: float) -> bool:
        """Whether our own loop ran late, since `started`, by half a command timeout or more: an
        answer that arrived meanwhile may have been waiting unread when the timeout fired."""
        return self.loop_lag.worst_since(started) * 2 >= self._command_timeout()

    async def _answers_ping(self) -> bool:
        probe = self._ping_probe
        if probe is None or probe.done():
            probe = self._ping_probe = asyncio.ensure_future(self._ping_ok())
        return await asyncio.shield(probe)

    async def _ping_ok(self) -> bool:
        """Whether Redis answers a PING; StoreBusy if every PING timed out under a stall of our
        own loop. Only a stall during the PING counts: one before it (a busy start-up, a long
        synchronous step) says nothing about this PING."""
        assert self.redis is not None
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

    def _retry_after(self) -> float:
        return max(1.0, self.breaker.seconds_until_probe())

    async def recover_now(self) -> bool:
        """Probe Redis now instead of at the next interval; True once it answers and the journal
        is replayed (fallback over, writes accepted)."""
        return self.recovery is not None and await self.recovery.recover_now()

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
        self._evictions_child.inc(count)

    def _count_invalidations(self, reason: str, count: int) -> None:
        if count:
            self._invalidation_children[reason].inc(count)

    def _bind_metrics(self, metrics: Metrics) -> None:
        """Pre-bind children; gauges mirroring in-process state read it at scrape time (no I/O)."""
        self._evictions_child = metrics.cache_evictions.labels("memory")
        self._invalidation_children = {
            reason: metrics.cache_invalidations.labels(reason) for reason in INVALIDATION_REASONS
        }
        metrics.memory_tier_entries.set_function(lambda: len(self.memory))
        metrics.memory_tier_bytes.set_function(lambda: self.memory.bytes)
        metrics.memory_tier_max_entries.set_function(lambda: self.memory.max_entries)
        metrics.memory_tier_max_bytes.set_function(lambda: self.memory.max_bytes)
        metrics.store_fallback_active.set_function(lambda: 1 if self.fallback_active else 0)
        metrics.store_replay_pending.set_function(lambda: len(self.journal))
        metrics.store_replay_max.set_function(lambda: self.journal.max_entries)


# Without Redis there is never an outage.
_NO_OUTAGE = Failover()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
