"""Fleet membership: this replica's place among the replicas sharing one Redis.

The protocol is described in `docs/recovery.md`; this part of it:

- **sync** (`sync`: the heartbeat every retry interval, and what coherence runs before it flushes
  memory): write this replica's record, read the others' and the data epoch, follow Redis's
  clock, begin a new epoch when the marker is gone or another server holds it, prune records
  silent for `PRUNE_AFTER`, and keep the other replicas' ids on disk (`FleetMemory`);
- **the record** (`report`): the epoch this replica followed and whether it is settled, written
  one at a time, each with the state as it is when sent. It turns unsettled as soon as an outage
  starts (`outage_started`), and before the first journalled write of a spell is acknowledged
  (`journalled`);
- **a miss** (`check_miss`): final only when every replica is settled in the current epoch
  (`FleetView.doubt`), with the fleet read again after the miss (one round trip, shared).

What it asks of the outage driver (`recovery.Recovery`, through `OutageSide`): whether this
replica is healthy (nothing left to replay, writes accepted), whether Redis refuses writes (the
record cannot be written then), to follow an epoch change (re-seed, re-send or flush: the data
moves there, not here), and to hear that a background sync failed. What the driver calls here:
`start`/`stop`/`leave`, `lock` (a recovery round and a sync never overlap) and `sync_locked`
within its round, `report`, `settle_if_healthy`, `outage_started`/`outage_ended`, `journalled`,
`sync` and `check_miss`.

The decisions are pure (`fleet.FleetView`, `fleet.next_epoch`, `fleet.epoch_change`) and the
clock is passed in; this class does the I/O, every Redis call through `RedisCaller.redis_call`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from exporter.core.clock import FleetClock
from exporter.core.errors import StoreUnavailable, WritesRefused
from exporter.core.metrics import Metrics
from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.store.breaker import CircuitBreaker
from exporter.store.fleet import Epoch, EpochChange, FleetView, Member, epoch_change, next_epoch
from exporter.store.redis_store import FleetSnapshot

log = logging.getLogger(__name__)
T = TypeVar("T")

# A replica silent this long, its record settled, is gone (crashed or scaled down): its misses
# stop being doubted. Until then, it may be in an outage of its own, journalling writes nobody can
# see. One last heard of unsettled (journalling) is awaited longer: it may be starting again on its
# journal (a SIGKILL, then a restart that waits for its turn on a busy node).
FORGET_AFTER = 10.0
AWAIT_UNSETTLED = 120.0
# Records of replicas silent for much longer are deleted from Redis (the hash stays bounded).
PRUNE_AFTER = 600.0
# The longest a journalled write waits for this replica's record to say "unsettled" before it is
# acknowledged (only the first of a spell waits: see `journalled`).
UNSETTLE_WAIT = 0.5


class FleetRecords(Protocol):
    """What membership needs of Redis (`RedisStore` provides it)."""

    async def fleet_sync(self, replica: str, record: Member | None) -> FleetSnapshot: ...
    async def fleet_view(self) -> tuple[Epoch | None, dict[str, Member | None]]: ...
    async def begin_epoch(self, expected: Epoch | None, new: Epoch) -> Epoch | None: ...
    async def leave_fleet(self, *replicas: str) -> None: ...


class FleetMemory(Protocol):
    """Where a replica keeps the ids of the others across its restarts (beside its journal)."""

    def load(self) -> list[str]: ...
    def keep(self, members: list[str]) -> None: ...


class RedisCaller(Protocol):
    """The tiered store's way of calling Redis (a timeout while this process's own loop stalled
    is `StoreBusy`, not an outage)."""

    async def redis_call(self, command: Callable[[], Awaitable[T]]) -> T: ...


class OutageSide(Protocol):
    """What membership needs of the outage driver (`recovery.Recovery`)."""

    @property
    def writes_refused(self) -> str | None: ...
    def healthy(self) -> bool: ...
    async def follow(self, change: EpochChange) -> None: ...
    def sync_failed(self, exc: StoreUnavailable) -> None: ...


class FleetMembership:
    def __init__(
        self,
        redis: FleetRecords,
        store: RedisCaller,
        outage: OutageSide,
        *,
        replica_id: str,
        clock: FleetClock,
        breaker: CircuitBreaker,
        metrics: Metrics,
        members: FleetMemory | None = None,
    ) -> None:
        self.redis = redis
        self.store = store
        self.outage = outage
        self.replica_id = replica_id
        self.clock = clock
        self.breaker = breaker
        self.view = FleetView(
            replica_id, forget_after=FORGET_AFTER, await_unsettled=AWAIT_UNSETTLED
        )
        self.members = members  # where the ids of the other replicas are kept across restarts
        self._kept_members: frozenset[str] = frozenset()
        if members is not None:
            self.view.recall(members.load(), clock.now())
            self._kept_members = frozenset(self.view.last_seen)
        self.closing = False  # stopping: no report or sync starts in the background any more
        # Held by a sync and by the driver's recovery round: they never overlap.
        self.lock = asyncio.Lock()
        # The data epoch this replica has followed (re-seeded into, re-sent to): its record says
        # settled in it once nothing of this replica's is left to replay.
        self._followed: Epoch | None = None
        self._settled_since: float | None = None  # when its record last turned settled
        self._run_id_seen = ""
        self._refresh: asyncio.Future[None] | None = None
        self._refresh_sent = False  # the shared read of the fleet is under way: too late to join
        self._record_lock = asyncio.Lock()
        self._claims_settled = False  # the last record written says settled
        self._unsettling: asyncio.Future[None] | None = None
        # This outage left a Redis the others may still read (`others_still_read`).
        self._others_read = False
        self._kicked: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Future[None]] = []
        self._bind_metrics(metrics)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Sync every retry interval from now on (the heartbeat)."""
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="store-heartbeat"))

    async def stop(self) -> None:
        """Stop the heartbeat and whatever report or sync runs in the background."""
        self.closing = True
        await cancel_and_wait(*self._tasks, self._refresh)
        self._tasks.clear()

    async def leave(self) -> None:
        """Shutting down with nothing left to replay: say so, so no other waits for this replica
        to report. (A record that vanishes means Redis lost the records: then it is awaited.)"""
        with contextlib.suppress(StoreUnavailable):
            await self._write_record(
                lambda record: self.redis.fleet_sync(
                    self.replica_id, dataclasses.replace(record, left=True)
                )
            )

    # -- what the outage driver reports ------------------------------------------------------

    def outage_started(self) -> None:
        """This replica began to journal (fallback or refusal): unsettled, and told at once."""
        self.view.unsettle()
        self.view.outage_started(self.clock.now())
        self._mark_unsettled()

    def others_still_read(self) -> None:
        """This replica stops using a Redis the others may still read: the master moved, and
        another replica may have followed it first and answer misses from it. Until this outage
        ends, a journalled write waits (bounded) for the unsettled record even though this
        replica is in fallback, and an attempt that failed is made again by the next one."""
        self._others_read = True

    def outage_ended(self) -> None:
        self._others_read = False
        self.view.outage_ended(self.clock.now())

    async def journalled(self) -> None:
        """A write went to the journal and is about to be acknowledged: the fleet must not take
        this replica for settled meanwhile (a miss elsewhere would be a final 404 for it). So a
        record claiming settled is replaced first (one attempt, shared, bounded: if Redis cannot
        take it, the others are in an outage too and doubt that record anyway)."""
        if self._claims_settled:
            self._mark_unsettled()
        pending = self._unsettling
        # Only while Redis is thought reachable by the others (a refusal, recovery settling
        # meanwhile, a master that moved): in an outage of Redis itself they cannot read it
        # either, and a hung one must cost one timeout.
        others_read = self.breaker.closed or self._others_read
        if pending is not None and not pending.done() and others_read:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(UNSETTLE_WAIT):
                    await asyncio.shield(pending)

    def settle_if_healthy(self) -> None:
        """Nothing of this replica's is left to replay: misses may be final (fleet permitting)."""
        followed, epoch = self._followed, self.view.epoch
        current = followed is not None and epoch is not None and followed.token == epoch.token
        if current and epoch is not None and self.outage.healthy():
            self.view.settle(epoch.token)

    # -- syncing -----------------------------------------------------------------------------

    async def sync(self) -> None:
        """Report to the fleet and follow it (epoch changes, Redis's clock): the heartbeat, and
        what coherence runs before it flushes memory (a lost connection may be a Redis that
        restarted without its data: re-seed first)."""
        async with self.lock:
            reported = self._record()
            await self.sync_locked()
            current = self._record()
            if (current.epoch, current.settled) != (reported.epoch, reported.settled):
                await self.report()

    async def sync_locked(self) -> None:
        """`sync`, with `lock` already held (by the driver's recovery round)."""
        # While Redis refuses writes the record cannot be written (everyone journals then). A new
        # process with nothing to replay reads the fleet before it first reports: its first
        # record then says settled. An unsettled one made every other replica answer 503 for a
        # miss for that moment (seed 11 round 17 of the torture run: the cold replica starting).
        quiet_start = self._followed is None and self.outage.healthy()
        if self.outage.writes_refused is None and not quiet_start:
            snapshot = await self.report()
        else:
            snapshot = await self.store.redis_call(
                lambda: self.redis.fleet_sync(self.replica_id, None)
            )
        self.clock.sync(snapshot.server_time, snapshot.sent, snapshot.received)
        epoch = await self._current_epoch(snapshot)
        self.view.update(epoch, snapshot.members, self.clock.now())
        self._members_gauge.set(len(self.view.last_seen))
        await self._keep_members()
        await self._prune(snapshot.members)
        if epoch is None:
            return  # removed again meanwhile: the next sync begins one
        change = epoch_change(self._followed, epoch, self._run_id_seen)
        if change is not None:
            log.info(
                "data epoch %s -> %s (%s), read from the server on port %d, run id %.8s",
                self._followed.token if self._followed is not None else "none",
                epoch.token,
                change.value,
                snapshot.port,
                snapshot.run_id,
            )
            self.view.unsettle()
            await self.outage.follow(change)  # if it fails, the next sync follows again
            self._followed = epoch
        self._run_id_seen = snapshot.run_id or self._run_id_seen
        self.settle_if_healthy()

    async def _current_epoch(self, snapshot: FleetSnapshot) -> Epoch | None:
        """The snapshot's epoch, or a new one begun now if its marker is gone or stale."""
        epoch = snapshot.epoch
        wanted = next_epoch(epoch, snapshot.run_id)
        if wanted is None:
            return epoch
        return await self.store.redis_call(lambda: self.redis.begin_epoch(epoch, wanted))

    async def _keep_members(self) -> None:
        known = frozenset(self.view.last_seen)
        if self.members is not None and known != self._kept_members:
            self._kept_members = known
            await asyncio.to_thread(self.members.keep, sorted(known))

    async def _prune(self, members: dict[str, Member | None]) -> None:
        now = self.clock.now()
        gone = [
            replica
            for replica, member in members.items()
            if member is not None and now - member.at > PRUNE_AFTER
        ]
        if gone:
            await self.redis.leave_fleet(*gone)

    # -- this replica's record ---------------------------------------------------------------

    def _record(self) -> Member:
        settled = self.view.settled and self.outage.healthy()
        now = self.clock.now()
        if not settled:
            self._settled_since = None
        elif self._settled_since is None:
            self._settled_since = now
        return Member(
            self._followed.token if self._followed is not None else "",
            settled,
            now,
            self._settled_since or 0.0,
        )

    async def report(self) -> FleetSnapshot:
        """Write this replica's record now (others stop doubting it at once)."""
        return await self._write_record(
            lambda record: self.redis.fleet_sync(self.replica_id, record)
        )

    async def _write_record(self, write: Callable[[Member], Awaitable[T]]) -> T:
        """Every write of this replica's record, one at a time, each with the state as it is
        when it is sent: a settled record sent before a write was journalled must never land
        after the unsettled one."""
        async with self._record_lock:
            record = self._record()
            if record.settled:
                # It may land while a write is journalled (the journal's entry becomes visible
                # only once on disk): that write must replace it, so it counts from now.
                self._claims_settled = True
            result = await self.store.redis_call(lambda: write(record))
            self._claims_settled = record.settled
            return result

    def _mark_unsettled(self) -> None:
        """Best effort, when this replica starts journalling: if Redis still answers others (a
        partition, a false timeout, a stale socket), their misses become 503 at once instead of
        when this record goes stale."""
        self._claims_settled = False  # one attempt per settled spell
        if self.closing:
            return
        task = self._unsettling = asyncio.ensure_future(self._try_report())
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    async def _try_report(self) -> None:
        try:
            await self.report()
        except WritesRefused:
            # Redis answers, and still holds the record as it was (settled, maybe): the next
            # write journalled tries again, or one journalled just as the refusal ends would be
            # acknowledged while others still read "settled".
            self._claims_settled = True
        except StoreUnavailable:
            # Unreachable: the others cannot read the record either, unless this replica left a
            # Redis they still read (its connections reset, the new master not answering yet).
            self._claims_settled = self._others_read

    def _forget_task(self, task: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    # -- misses ------------------------------------------------------------------------------

    async def check_miss(self, read_at: float) -> None:
        """StoreUnavailable (503) if a session Redis lacked, in a read begun at `read_at` (fleet
        clock), may still be held unreplayed by a replica (this one included); returns when the
        miss is final. The fleet is read again after the miss (one round trip shared by the
        misses waiting on it), so a Redis that just lost its data or changed hands is never
        taken for the one the view last saw, nor a replica that finished replaying meanwhile for
        one that had replayed before the read."""
        await self._refresh_view()
        reason = self.view.doubt(self.clock.now(), read_at)
        if reason is not None:
            raise StoreUnavailable(reason, 1.0)

    async def _refresh_view(self) -> None:
        """One shared read of the fleet for every miss waiting on it, sent after they missed: a
        read already sent may have reached Redis before a record that explains this miss (another
        replica's "unsettled", written before it acknowledged the write that missed here)."""
        refresh = self._refresh
        if refresh is None or refresh.done() or self._refresh_sent:
            self._refresh_sent = False
            refresh = self._refresh = asyncio.ensure_future(self._read_view())
        try:
            await asyncio.shield(refresh)
        except WritesRefused as exc:
            message = f"Redis refuses writes ({exc.reason}); a replica may be journalling it"
            raise StoreUnavailable(message, 1.0) from exc
        except StoreUnavailable as exc:
            raise StoreUnavailable("the fleet's state could not be read", 1.0) from exc

    async def _read_view(self) -> None:
        self._refresh_sent = True  # a miss from now on waits for the next read
        if self.outage.writes_refused is None:
            epoch, members = await self._report_on_miss()
        else:  # refusing already: this replica's own misses are doubted meanwhile
            epoch, members = await self.store.redis_call(self.redis.fleet_view)
        self.view.update(epoch, members, self.clock.now())
        followed = self._followed
        if epoch is None or followed is None or epoch.token != followed.token:
            self._kick_sync()  # the view doubts meanwhile: this replica has not followed it

    async def _report_on_miss(self) -> tuple[Epoch | None, dict[str, Member | None]]:
        """Read the fleet by writing this replica's record: a Redis that refuses writes (out of
        memory, too few replicas) refuses it too. Another replica may then be journalling the
        session that missed, unable to say so in its own record, so the miss is doubted, and this
        replica takes the refusal as its own (its next write would have found it anyway)."""
        try:
            snapshot = await self.report()
        except WritesRefused as exc:
            self.outage.sync_failed(exc)
            raise
        return snapshot.epoch, snapshot.members

    def _kick_sync(self) -> None:
        """Sync soon, once however many reads ask (recovery syncs itself when Redis is back)."""
        if self.closing or not self.breaker.closed:
            return
        if self._kicked is not None and not self._kicked.done():
            return
        task = self._kicked = asyncio.ensure_future(self._try_sync())
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    # -- the heartbeat -----------------------------------------------------------------------

    async def _try_sync(self) -> None:
        try:
            await self.sync()
        except StoreUnavailable as exc:
            self.outage.sync_failed(exc)

    async def _heartbeat_loop(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.breaker.retry_interval)
            if not self.breaker.closed or self.lock.locked():
                continue  # recovery reports when it is done
            try:
                await self._try_sync()
            except Exception:
                log.exception("unexpected error while syncing with the fleet")

    def _bind_metrics(self, metrics: Metrics) -> None:
        self._members_gauge = metrics.store_fleet_members
        metrics.store_fleet_settled.set_function(
            lambda: 1 if self.view.doubt(self.clock.now()) is None else 0
        )
        metrics.store_clock_offset.set_function(self.clock.offset)
