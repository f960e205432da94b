"""Recovery: how the tiered store leaves an outage, with the fleet's write guarantee kept.

The protocol is described, state by state, in `docs/recovery.md`; in short:

- **failed** (`failed`): a call found Redis unreachable. Fallback: memory and the journal serve,
  writes are journalled (acknowledged only once journalled), misses of sessions are 503.
- **refused** (`refused`): Redis answers but refuses writes (read-only, out of memory, too few
  replicas, ...). Reads still go to Redis; writes are journalled.
- **master switched** (`master_switched`): Sentinel announced a new master. Handled as an outage
  (connections to the old master are dropped, even those in use), and the writes acknowledged in
  the last seconds (`RecentWrites`) are sent again: the old master may have taken them after the
  promotion, and a replica loses what it took on its own when it is resynchronised.
- **recover** (`recover_now`, and the loop every retry interval): Redis answers again. Sync with
  the fleet first (its clock, the data epoch: a Redis that came back without its data is
  re-seeded from what memory holds *before* anything is flushed), then replay the journal
  (version-checked), then settle: writes accepted, fallback over (memory flushed: other replicas
  may have changed what it holds), this replica's record says settled.
- **sync** (the heartbeat, every retry interval, and before coherence flushes memory): write
  this replica's record, read the others' and the epoch, follow Redis's clock.
- **a miss** (`check_miss`): final only when every replica is settled in the current epoch
  (`FleetView.doubt`); else 503 + Retry-After.

Everything here talks to Redis through `RedisStore` and to the memory tier through `StoreSide`
(the tiered store); the decisions themselves are pure (`failover.Failover`, `fleet`,
`breaker.CircuitBreaker`), and the clock is passed in. Unit tests drive this class with an
in-process stand-in for Redis (`tests/unit/sessions/test_recovery.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from exporter.core.clock import FleetClock
from exporter.core.errors import StoreBusy, StoreUnavailable, WritesRefused
from exporter.core.event_log import EventLog
from exporter.core.metrics import REFUSAL_REASONS, Metrics
from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.store.breaker import CircuitBreaker
from exporter.store.contract import ReplayItem
from exporter.store.failover import Failover
from exporter.store.fleet import Epoch, EpochChange, FleetView, Member, epoch_change, next_epoch
from exporter.store.journal import Journal
from exporter.store.recent_writes import RecentWrites
from exporter.store.redis_store import FleetSnapshot

log = logging.getLogger(__name__)
T = TypeVar("T")

REPLAY_BATCH = 256
# A replica silent this long is gone (crashed or scaled down): its misses stop being doubted.
# Until then, a silent replica may be in an outage of its own, journalling writes nobody can see.
FORGET_AFTER = 10.0
# Records of replicas silent for much longer are deleted from Redis (the hash stays bounded).
PRUNE_AFTER = 600.0
# How long acknowledged writes are kept to be sent again after a Sentinel master switch: the
# switch is heard at once through the sentinels' pub/sub, or by the 5 s topology check.
RESEND_WINDOW = 15.0
# The longest a journalled write waits for this replica's record to say "unsettled" before it is
# acknowledged (only the first of a spell waits: see `journalled`).
UNSETTLE_WAIT = 0.5


class FleetRedis(Protocol):
    """What recovery needs of Redis (`RedisStore` provides it)."""

    async def ping(self) -> float: ...
    async def reset_connections(self, *, in_use: bool = False) -> None: ...
    async def probe_write(self) -> None: ...
    async def replay(self, items: Sequence[ReplayItem]) -> list[bool]: ...
    async def fleet_sync(self, replica: str, record: Member | None) -> FleetSnapshot: ...
    async def fleet_view(self) -> tuple[Epoch | None, dict[str, Member | None]]: ...
    async def begin_epoch(self, expected: Epoch | None, new: Epoch) -> Epoch | None: ...
    async def leave_fleet(self, *replicas: str) -> None: ...


class FleetMemory(Protocol):
    """Where a replica keeps the ids of the others across its restarts (beside its journal)."""

    def load(self) -> list[str]: ...
    def keep(self, members: list[str]) -> None: ...


class StoreSide(Protocol):
    """What recovery needs of the tiered store: its memory tier, and its way of calling Redis
    (a timeout while this process's own loop stalled is `StoreBusy`, not an outage)."""

    async def redis_call(self, command: Callable[[], Awaitable[T]]) -> T: ...
    def held_sessions(self) -> list[ReplayItem]: ...
    def expect_echoes(self, items: list[ReplayItem]) -> list[bool]: ...
    def echoes_missed(
        self, items: list[ReplayItem], expected: list[bool], sent: list[bool]
    ) -> None: ...
    def flush_memory(self, reason: str, *, keep_for_reseed: bool = True) -> int: ...
    def replayed(self, key: str) -> None: ...
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
        self.redis = redis
        self.store = store
        self.journal = journal
        self.replica_id = replica_id
        self.clock = clock
        self.breaker = breaker
        self.events = events
        self.recent = recent  # Sentinel only: what a master switch re-sends
        self.failover = Failover(wall=clock.now)
        self.view = FleetView(replica_id, forget_after=FORGET_AFTER)
        self.members = members  # where the ids of the other replicas are kept across restarts
        self._kept_members: frozenset[str] = frozenset()
        if members is not None:
            self.view.recall(members.load(), clock.now())
            self._kept_members = frozenset(self.view.last_seen)
        self.switches = 0  # Sentinel master switches heard
        self.closing = False
        # The data epoch this replica has followed (re-seeded into, re-sent to): its record says
        # settled in it once nothing of this replica's is left to replay.
        self._followed: Epoch | None = None
        self._settled_since: float | None = None  # when its record last turned settled
        self._run_id_seen = ""
        self._resend: dict[str, ReplayItem] = {}  # acknowledged writes a new master may lack
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Future[None] | None = None
        self._record_lock = asyncio.Lock()
        self._claims_settled = False  # the last record written says settled
        self._unsettling: asyncio.Future[None] | None = None
        self._kicked: asyncio.Future[None] | None = None
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
                await self.sync()
        if self.journal:  # left by a previous run: replay as soon as Redis answers
            log.warning(
                "%d journalled writes from a previous run: replaying once Redis answers",
                len(self.journal),
            )
            self._wake.set()
        self._tasks.append(asyncio.create_task(self._recovery_loop(), name="store-recovery"))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="store-heartbeat"))

    async def stop(self) -> None:
        """Stop the loops (the store then replays what it can and closes the journal)."""
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

    # -- what the store reports --------------------------------------------------------------

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
        if self.failover.failed():
            self.view.unsettle()
            self.view.outage_started(self.clock.now())
            self.store.fallback_changed()
            self._failovers_child.inc()
            log.warning("%s: serving from memory, journalling writes", exc)
            self._event("failover", f"{exc}; serving from memory", reason=exc.code)
            self._mark_unsettled()
        self._wake.set()

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

    def refused(self, reason: str) -> None:
        if not self.failover.refused(reason):
            return
        self.view.unsettle()
        self.view.outage_started(self.clock.now())
        self._set_refused_gauges()
        message = f"Redis refuses writes ({reason}): journalling writes, reads still from Redis"
        log.warning(message)
        self._event("writes_refused", message, reason=reason)
        self._mark_unsettled()
        self._wake.set()

    async def journalled(self) -> None:
        """A write went to the journal; called before it is acknowledged. It must be replayed
        within one retry interval, whatever state the rest of recovery is in (a refusal can end
        while the write is being synced). And the fleet must not take this replica for settled
        meanwhile: a miss elsewhere would be a final 404 for it. So a record claiming settled is
        replaced first (one attempt, shared, bounded: if Redis cannot take it, the others are in
        an outage too and doubt that record anyway)."""
        self._wake.set()
        if self._claims_settled:
            self._mark_unsettled()
        pending = self._unsettling
        # Only while Redis is thought reachable (a refusal, or recovery settling meanwhile): in
        # an outage the others cannot read Redis either, and a hung one must cost one timeout.
        if pending is not None and not pending.done() and self.breaker.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(UNSETTLE_WAIT):
                    await asyncio.shield(pending)

    def acknowledged(self, item: ReplayItem, switches_before: int) -> None:
        """Redis took a write: remember it for a master switch; one that completed after a switch
        was heard was taken by the old master, so it is sent again now."""
        if self.recent is None:
            return
        self.recent.add(item)
        if switches_before != self.switches:
            self._resend[item.key] = item
            self._wake.set()

    async def master_switched(self, reason: str) -> None:
        """Sentinel moved the master: stop talking to the old one, and send the last writes again
        to the new one once it answers."""
        self.switches += 1
        if self.recent is not None:
            for item in self.recent.snapshot():
                self._resend[item.key] = item
        message = f"Sentinel switched the master ({reason})"
        log.warning(message)
        self._event("master_switched", message, resend=len(self._resend))
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
            and not self._resend
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
        async with self._lock:  # the loop, recover_now() and the heartbeat never overlap
            if self.healthy():
                return
            await self.redis.ping()
            if self.failover.fallback_active:
                # Sockets pooled before the outage are dead: drop them now, rather than have
                # each fail once on first use and look like a new outage.
                await self.redis.reset_connections()
            if self.failover.writes_refused is not None and not self.journal:
                await self.redis.probe_write()  # WritesRefused while still refusing
            # Writes go to Redis again from here on; replays cannot overwrite them (versions).
            self.breaker.success()
            self._set_backend_up(True)
            await self._sync_locked()  # the epoch first: re-seed before anything is flushed
            replayed, skipped = await self._replay_all()
            if not self.breaker.closed:
                return  # a live write failed meanwhile: stay in fallback
            self._settle_outage(replayed, skipped)
            self._settle_if_healthy()
            await self._report()
            if self.journal or self._resend:  # written during the awaits above: next round
                self._wake.set()

    async def _send(self, items: list[ReplayItem]) -> list[bool]:
        """Replay `items` (version-checked in Redis); whether each was written. What a replay
        wrote only reached Redis now: a master switch soon after must re-send it too."""
        expected = self.store.expect_echoes(items)
        sent = [False] * len(items)
        try:
            sent = await self.redis.replay(items)
        finally:
            self.store.echoes_missed(items, expected, sent)
        if self.recent is not None:
            for item, written in zip(items, sent, strict=True):
                if written:
                    self.recent.add(item)
        return sent

    async def _replay_all(self) -> tuple[int, int]:
        """Replay the writes a new master may lack, then the journal; (written, skipped)."""
        replayed = skipped = 0
        while self._resend:
            batch = list(self._resend.values())[:REPLAY_BATCH]
            written = sum(await self._send(batch))
            for item in batch:
                if self._resend.get(item.key) is item:
                    del self._resend[item.key]
            replayed, skipped = replayed + written, skipped + len(batch) - written
        while self.journal:
            batch = self.journal.peek(REPLAY_BATCH)
            results = await self._send(batch)
            self.journal.discard(batch)
            for item in batch:
                if self.journal.get(item.key) is None:
                    self.store.replayed(item.key)
            written = sum(results)
            replayed, skipped = replayed + written, skipped + len(results) - written
            self._replayed_child.inc(len(results))
        return replayed, skipped

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
            outage = self.failover.failed_back()
            self.store.fallback_changed()
            # Another replica may have changed keys this tier holds; Redis is the truth again.
            flushed = self.store.flush_memory("flush")
            message = (
                f"Redis back after {outage:.1f}s: replayed {replayed}, skipped {skipped} older"
            )
            log.info(message)
            self._event("replay_done", message, replayed=replayed, skipped=skipped, dropped=0)
            self._event(
                "failback",
                f"Redis reachable again; memory tier flushed ({flushed} entries)",
                outage_seconds=round(outage, 3),
            )
        if was_out:
            self.view.outage_ended(self.clock.now())

    # -- the fleet ---------------------------------------------------------------------------

    async def sync(self) -> None:
        """Report to the fleet and follow it (epoch changes, Redis's clock): the heartbeat, and
        what coherence runs before it flushes memory (a lost connection may be a Redis that
        restarted without its data: re-seed first)."""
        async with self._lock:
            reported = self._record()
            await self._sync_locked()
            current = self._record()
            if (current.epoch, current.settled) != (reported.epoch, reported.settled):
                await self._report()

    async def _sync_locked(self) -> None:
        # While Redis refuses writes the record cannot be written (everyone journals then).
        if self.failover.writes_refused is None:
            snapshot = await self._report()
        else:
            snapshot = await self.store.redis_call(
                lambda: self.redis.fleet_sync(self.replica_id, None)
            )
        self.clock.sync(snapshot.server_time, snapshot.sent, snapshot.received)
        epoch = snapshot.epoch
        wanted = next_epoch(epoch, snapshot.run_id)
        if wanted is not None:
            expected = epoch
            epoch = await self.store.redis_call(lambda: self.redis.begin_epoch(expected, wanted))
        self.view.update(epoch, snapshot.members, self.clock.now())
        self._members_gauge.set(len(self.view.last_seen))
        await self._keep_members()
        await self._prune(snapshot.members)
        if epoch is None:
            return  # removed again meanwhile: the next sync begins one
        change = epoch_change(self._followed, epoch, self._run_id_seen)
        if change is not None:
            self.view.unsettle()
            await self._follow(change)  # if it fails, the next sync follows again
            self._followed = epoch
        self._run_id_seen = snapshot.run_id or self._run_id_seen
        self._settle_if_healthy()

    async def _follow(self, change: EpochChange) -> None:
        """Redis holds another epoch's data than the one this replica followed."""
        if change is EpochChange.FIRST:
            return
        if change is EpochChange.FLUSHED:
            flushed = self.store.flush_memory("flush", keep_for_reseed=False)
            message = f"Redis's data was flushed: memory tier dropped too ({flushed} entries)"
        elif change is EpochChange.KEPT:
            resend = self.recent.snapshot() if self.recent is not None else []
            for item in resend:
                self._resend.setdefault(item.key, item)
            message = f"Redis's data is held by a new server or process: re-sending {len(resend)}"
        else:
            written = await self._reseed()
            message = f"Redis came back empty: re-seeded {written} sessions from the memory tier"
        log.warning(message)
        self._event("epoch_changed", message, change=change.value)

    async def _reseed(self) -> int:
        """Write back what memory holds (and what was acknowledged lately), version-checked:
        never over a newer value or a delete. The journal's entries replay by themselves."""
        journal = self.journal
        held = self.store.held_sessions()
        items = {item.key: item for item in held if journal.get(item.key) is None}
        if self.recent is not None:
            for item in self.recent.snapshot():
                items.setdefault(item.key, item)
        batch = list(items.values())
        written = 0
        for start in range(0, len(batch), REPLAY_BATCH):
            written += sum(await self._send(batch[start : start + REPLAY_BATCH]))
        self._reseeded_child.inc(written)
        self._event("reseeded", f"re-seeded {written} sessions", sessions=written)
        return written

    def _settle_if_healthy(self) -> None:
        """Nothing of this replica's is left to replay: misses may be final (fleet permitting)."""
        followed, epoch = self._followed, self.view.epoch
        current = followed is not None and epoch is not None and followed.token == epoch.token
        if current and epoch is not None and self.healthy():
            self.view.settle(epoch.token)

    def _record(self) -> Member:
        settled = self.view.settled and self.healthy()
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

    async def _report(self) -> FleetSnapshot:
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
        with contextlib.suppress(StoreUnavailable):
            await self._report()

    def _forget_task(self, task: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)  # type: ignore[arg-type]

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
        """One shared read of the fleet for every miss waiting on it, begun after they missed
        (read-only: the heartbeat and recovery do the rest)."""
        refresh = self._refresh
        if refresh is None or refresh.done():
            refresh = self._refresh = asyncio.ensure_future(self._read_view())
        try:
            await asyncio.shield(refresh)
        except StoreUnavailable as exc:
            raise StoreUnavailable("the fleet's state could not be read", 1.0) from exc

    async def _read_view(self) -> None:
        epoch, members = await self.store.redis_call(self.redis.fleet_view)
        self.view.update(epoch, members, self.clock.now())
        followed = self._followed
        if epoch is None or followed is None or epoch.token != followed.token:
            self._kick_sync()  # the view doubts meanwhile: this replica has not followed it

    def _kick_sync(self) -> None:
        """Sync soon, once however many reads ask (recovery syncs itself when Redis is back)."""
        if self.closing or not self.breaker.closed:
            return
        if self._kicked is not None and not self._kicked.done():
            return
        task = self._kicked = asyncio.ensure_future(self._try_sync())
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    async def _try_sync(self) -> None:
        try:
            await self.sync()
        except WritesRefused as exc:
            if exc.reason != "noauth":
                self.refused(exc.reason)  # the record's write was refused: so are others
        except StoreUnavailable as exc:
            self.report_unavailable(exc)

    async def _heartbeat_loop(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.breaker.retry_interval)
            if not self.breaker.closed or self._lock.locked():
                continue  # recovery reports when it is done
            try:
                await self._try_sync()
            except Exception:
                log.exception("unexpected error while syncing with the fleet")

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
        self._replayed_child = metrics.store_replayed
        self._reseeded_child = metrics.store_reseeded
        self._backend_up_child = metrics.store_backend_up.labels("redis")
        self._refused_children = {
            reason: metrics.store_writes_refused.labels(reason) for reason in REFUSAL_REASONS
        }
        self._members_gauge = metrics.store_fleet_members
        metrics.store_fleet_settled.set_function(
            lambda: 1 if self.view.doubt(self.clock.now()) is None else 0
        )
        metrics.store_clock_offset.set_function(self.clock.offset)
