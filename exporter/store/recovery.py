"""Recovery: how the tiered store leaves an outage, with the fleet's write guarantee kept.

The protocol is described, state by state, in `docs/recovery.md`; this module drives the outage:

- **failed** (`failed`): a call found Redis unreachable. Fallback: memory and the journal serve,
  writes are journalled (acknowledged only once journalled), misses of sessions are 503.
- **refused** (`refused`): Redis answers but refuses writes (read-only, out of memory, too few
  replicas, ...). Reads still go to Redis; writes are journalled.
- **master switched** (`master_switched`): Sentinel announced a new master, or a Cluster's
  primaries changed. Handled as an outage (connections to the old master are dropped, even those
  in use), and the writes acknowledged in the last seconds (`RecentWrites`) are sent again: the
  old master may have taken them after the promotion, and a replica loses what it took on its own
  when it is resynchronised. On a Cluster, recovery waits until the client routes to the new
  primaries (`ClusterWatch.before_replay`): a master woken after its replica took over still
  takes writes.
- **recover** (`recover_now`, and the loop every retry interval): Redis answers again. Sync with
  the fleet first (its clock, the data epoch: a Redis that came back without its data is
  re-seeded from what memory holds *before* anything is flushed), then replay the journal
  (version-checked), then settle: writes accepted, fallback over (memory flushed: other replicas
  may have changed what it holds), this replica's record says settled.

It owns two parts, and is the only one to call them:

- `fleet_membership.FleetMembership` (`fleet`): the records, the heartbeat, the data epoch and
  whether a miss is final (`sync`, `check_miss`). It calls back through `OutageSide`: `healthy`,
  `writes_refused`, `follow` (an epoch change: handed to the replayer) and `sync_failed`.
- `replayer.Replayer` (`replay`): what goes back to Redis (the journal, the re-send ring, a
  re-seed). It calls nothing here.

Everything here talks to Redis through `RedisStore` and to the memory tier through `StoreSide`
(the tiered store); the decisions themselves are pure (`failover.Failover`, `fleet`,
`breaker.CircuitBreaker`), and the clock is passed in. Unit tests drive this class with an
in-process stand-in for Redis (`tests/unit/sessions/test_recovery.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from exporter.core.clock import FleetClock
from exporter.core.errors import StoreBusy, StoreUnavailable, WritesRefused
from exporter.core.event_log import EventLog
from exporter.core.metrics import REFUSAL_REASONS, Metrics
from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.store.breaker import CircuitBreaker
from exporter.store.contract import ReplayItem
from exporter.store.failover import Failover
from exporter.store.fleet import EpochChange, FleetView
from exporter.store.fleet_membership import (
    FleetMembership,
    FleetMemory,
    FleetRecords,
    RedisCaller,
)
from exporter.store.journal import Journal
from exporter.store.recent_writes import RecentWrites
from exporter.store.replayer import RESEND_WINDOW, Replayer, ReplayRedis, ReplaySide

__all__ = ["RESEND_WINDOW", "FleetMemory", "FleetRedis", "Recovery", "StoreSide"]

NOT_HELD = "the memory tier does not hold this key"

log = logging.getLogger(__name__)


class FleetRedis(FleetRecords, ReplayRedis, Protocol):
    """What recovery needs of Redis (`RedisStore` provides it)."""

    async def ping(self) -> float: ...
    async def reset_connections(self, *, in_use: bool = False) -> None: ...
    async def probe_write(self) -> None: ...


class StoreSide(RedisCaller, ReplaySide, Protocol):
    """What recovery needs of the tiered store: its memory tier, and its way of calling Redis."""

    def fallback_changed(self) -> None: ...


class Recovery:
    def __init__(
        self,
        redis: FleetRedis,
        store: StoreSide,
        journal: Journal,
        *,
        replica_id: str,
        clock: FleetClock,
        breaker: CircuitBreaker,
        metrics: Metrics,
        events: EventLog | None = None,
        recent: RecentWrites | None = None,
        members: FleetMemory | None = None,
    ) -> None:
        self._redis = redis  # shared with its two parts: read-only
        self.store = store
        self.journal = journal
        self.replica_id = replica_id
        self.clock = clock
        self.breaker = breaker
        self.events = events
        self.failover = Failover(wall=clock.now)
        self.replay = Replayer(redis, store, journal, metrics=metrics, events=events, recent=recent)
        self.fleet = FleetMembership(
            redis,
            store,
            self,
            replica_id=replica_id,
            clock=clock,
            breaker=breaker,
            metrics=metrics,
            members=members,
        )
        self.switches = 0  # master switches heard (Sentinel, Cluster)
        # Cluster: whether the primaries changed, and whether the client routes to them, asked
        # before replaying (`ClusterWatch.before_replay`; StoreUnavailable while it does not).
        self.before_replay: Callable[[], Awaitable[None]] | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._bind_metrics(metrics)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Check Redis once (unreachable: start in fallback), then keep recovering and syncing."""
        try:
            await self.redis.ping()
        except StoreUnavailable as exc:
            self.failed(exc)
        else:
            self._set_backend_up(True)
            with contextlib.suppress(StoreUnavailable):
                await self.fleet.sync()
        if self.journal:  # left by a previous run: replay as soon as Redis answers
            log.warning(
                "%d journalled writes from a previous run: replaying once Redis answers",
                len(self.journal),
            )
            self._wake.set()
        self._tasks.append(asyncio.create_task(self._recovery_loop(), name="store-recovery"))
        self.fleet.start()

    async def stop(self) -> None:
        """Stop the loops (the store then replays what it can and closes the journal)."""
        self.fleet.closing = True  # no report or sync starts in the background from here on
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        await self.fleet.stop()

    async def leave(self) -> None:
        """Shutting down with nothing left to replay: say so, so no other waits for this replica
        to report. (A record that vanishes means Redis lost the records: then it is awaited.)"""
        await self.fleet.leave()

    # -- what the store reports --------------------------------------------------------------

    @property
    def redis(self) -> FleetRedis:
        return self._redis

    @property
    def view(self) -> FleetView:
        return self.fleet.view

    @property
    def fallback_active(self) -> bool:
        return self.failover.fallback_active

    @property
    def writes_refused(self) -> str | None:
        return self.failover.writes_refused

    def failed(self, exc: StoreUnavailable) -> None:
        """Redis did not answer a call: fall back (once per outage), recover in the background."""
        self.breaker.failure()
        self._set_backend_up(False)
        if self.failover.failed(str(exc)):
            self.fleet.outage_started()
            self.store.fallback_changed()
            self._failovers_child.inc()
            log.warning("%s: serving from memory, journalling writes", exc)
            self._event("failover", f"{exc}; serving from memory", reason=exc.code)
        self._wake.set()

    def not_held(self) -> StoreUnavailable:
        """The 503 for a key that memory does not hold while Redis cannot be asked, saying why:
        an operator (and the torture checker) tells a slow Redis from a dead one by it."""
        failover, refused = self.failover, self.failover.writes_refused
        why = failover.fallback_cause or (
            f"Redis refuses writes ({refused})" if refused else "Redis is unreachable"
        )
        return StoreUnavailable(f"{why}; {NOT_HELD}", self.breaker.retry_after())

    def store_error(self, exc: StoreUnavailable) -> None:
        """A write failed: a refusal (Redis answers, will not write) or an outage."""
        if isinstance(exc, WritesRefused) and exc.reason != "noauth":
            self.refused(exc.reason)
        else:
            self.failed(exc)

    def report_unavailable(self, exc: StoreUnavailable) -> None:
        """Something other than a store call found Redis unreachable: fall back now."""
        if self.breaker.closed and not isinstance(exc, StoreBusy | WritesRefused):
            self.failed(exc)

    def sync_failed(self, exc: StoreUnavailable) -> None:
        """A sync in the background failed: a refused record write means the rest are refused."""
        if isinstance(exc, WritesRefused):
            if exc.reason != "noauth":
                self.refused(exc.reason)
        else:
            self.report_unavailable(exc)

    def refused(self, reason: str) -> None:
        if not self.failover.refused(reason):
            return
        self.fleet.outage_started()
        self._set_refused_gauges()
        message = f"Redis refuses writes ({reason}): journalling writes, reads still from Redis"
        log.warning(message)
        self._event("writes_refused", message, reason=reason)
        self._wake.set()

    async def journalled(self) -> None:
        """A write went to the journal; called before it is acknowledged. It must be replayed
        within one retry interval, whatever state the rest of recovery is in (a refusal can end
        while the write is being synced). And the fleet must not take this replica for settled
        meanwhile (`FleetMembership.journalled`)."""
        self._wake.set()
        await self.fleet.journalled()

    def acknowledged(self, item: ReplayItem, switches_before: int) -> None:
        """Redis took a write: remember it for a master switch; one that completed after a switch
        was heard was taken by the old master, so it is sent again now."""
        if self.replay.acknowledged(item, late=switches_before != self.switches):
            self._wake.set()

    async def master_switched(self, reason: str) -> None:
        """Sentinel moved the master, or a Cluster its primaries: stop talking to the old one,
        and send the last writes again to the new one once it answers."""
        self.switches += 1
        self.replay.resend_recent()
        message = f"the master moved ({reason})"
        log.warning(message)
        self._event("master_switched", message, resend=self.replay.resends)
        self.fleet.others_still_read()
        self.failed(StoreUnavailable(message))
        with contextlib.suppress(StoreUnavailable):
            await self.redis.reset_connections(in_use=True)

    # -- recovering --------------------------------------------------------------------------

    def healthy(self) -> bool:
        return (
            self.breaker.closed
            and not self.failover.fallback_active
            and self.failover.writes_refused is None
            and not self.journal
            and not self.replay.resends
        )

    async def recover_now(self) -> bool:
        """Probe Redis now instead of at the next interval; True once it answers and every
        write is replayed (fallback over, writes accepted)."""
        if self.healthy():
            return True
        try:
            await self._recover()
        except StoreUnavailable as exc:
            self.store_error(exc)
        return self.healthy()

    async def sync(self) -> None:
        """Report to the fleet and follow it (`FleetMembership.sync`)."""
        await self.fleet.sync()

    async def check_miss(self, read_at: float) -> None:
        """StoreUnavailable (503) unless a miss in a read begun at `read_at` is final
        (`FleetMembership.check_miss`)."""
        await self.fleet.check_miss(read_at)

    async def follow(self, change: EpochChange) -> None:
        """Redis holds another epoch's data than the one this replica followed."""
        await self.replay.follow(change)

    async def _recovery_loop(self) -> None:
        interval = self.breaker.retry_interval
        while True:
            raise_if_cancelled()  # redis-py may have swallowed a cancel during the last attempt
            if self.healthy():
                self._wake.clear()
                await self._wake.wait()
            if self.breaker.closed:
                await asyncio.sleep(interval)  # refusing, or journalled: once per interval
            else:
                await asyncio.sleep(max(self.breaker.seconds_until_probe(), 0.01))
            if not self.breaker.allow():
                continue
            try:
                await self._recover()
            except StoreUnavailable as exc:
                self.store_error(exc)
            except Exception:  # a bug here must not end recovery for good
                log.exception("unexpected error while recovering the Redis tier")
                self.breaker.failure()

    async def _recover(self) -> None:
        async with self.fleet.lock:  # the loop, recover_now() and the heartbeat never overlap
            if self.healthy():
                return
            await self.redis.ping()
            if self.before_replay is not None:
                await self.before_replay()
            if self.failover.fallback_active:
                # Sockets pooled before the outage are dead: drop them now, rather than have
                # each fail once on first use and look like a new outage.
                await self.redis.reset_connections()
            if self.failover.writes_refused is not None and not self.journal:
                await self.redis.probe_write()  # WritesRefused while still refusing
            # Writes go to Redis again from here on; replays cannot overwrite them (versions).
            self.breaker.success()
            self._set_backend_up(True)
            try:
                await self.fleet.sync_locked()  # the epoch first: re-seed before any flush
                replayed, skipped = await self.replay.replay_all()
            except WritesRefused as exc:
                if self.failover.fallback_active and exc.reason != "noauth":
                    self._fail_back_refused(exc.reason)
                raise
            if not self.breaker.closed:
                return  # a live write failed meanwhile: stay in fallback
            self._settle_outage(replayed, skipped)
            self.fleet.settle_if_healthy()
            await self.fleet.report()
            if self.journal or self.replay.resends:  # written during the awaits: next round
                self._wake.set()

    def _settle_outage(self, replayed: int, skipped: int) -> None:
        """Every write is in Redis: writes accepted, fallback over (memory flushed)."""
        was_out = self.failover.fallback_active or self.failover.writes_refused is not None
        ended = self.failover.accepted()
        if ended is not None:
            reason, seconds = ended
            self._set_refused_gauges()
            message = f"Redis accepts writes again after {seconds:.1f}s ({reason})"
            log.info(message)
            self._event("writes_accepted", message, reason=reason)
        if self.failover.fallback_active:
            self._fail_back(replayed, skipped)
        if was_out:
            self.fleet.outage_ended()

    def _fail_back_refused(self, reason: str) -> None:
        """Redis answers again but refuses writes (it went out of memory meanwhile, or the
        outage was a timeout during a refusal): reads go to it again, writes stay journalled
        until it takes them. Not an outage any more: a refusal."""
        self.refused(reason)
        outage, flushed = self._leave_fallback()
        message = f"Redis back after {outage:.1f}s but refusing writes ({reason})"
        log.info("%s: reads from Redis, writes journalled", message)
        self._failback_event(outage, flushed)

    def _fail_back(self, replayed: int, skipped: int) -> None:
        outage, flushed = self._leave_fallback()
        message = f"Redis back after {outage:.1f}s: replayed {replayed}, skipped {skipped} older"
        log.info(message)
        self._event("replay_done", message, replayed=replayed, skipped=skipped, dropped=0)
        self._failback_event(outage, flushed)

    def _leave_fallback(self) -> tuple[float, int]:
        """(the outage's length, the memory entries flushed). Another replica may have changed
        keys this tier holds; Redis is the truth again (the journal's writes stay pinned)."""
        outage = self.failover.failed_back()
        self.store.fallback_changed()
        return outage, self.store.flush_memory("flush")

    def _failback_event(self, outage: float, flushed: int) -> None:
        self._event(
            "failback",
            f"Redis reachable again; memory tier flushed ({flushed} entries)",
            outage_seconds=round(outage, 3),
        )

    # -- metrics and events ------------------------------------------------------------------

    def _set_backend_up(self, up: bool) -> None:
        self._backend_up_child.set(1 if up else 0)

    def _set_refused_gauges(self) -> None:
        for reason, child in self._refused_children.items():
            child.set(1 if reason == self.failover.writes_refused else 0)

    def _event(self, type: str, message: str, **details: object) -> None:
        if self.events is not None:
            self.events.record(type, message, **details)

    def _bind_metrics(self, metrics: Metrics) -> None:
        self._failovers_child = metrics.store_failovers
        self._backend_up_child = metrics.store_backend_up.labels("redis")
        self._refused_children = {
            reason: metrics.store_writes_refused.labels(reason) for reason in REFUSAL_REASONS
        }
