"""Writes and deletes through the tiered store: to Redis while it accepts them, else journalled.

A write goes through to Redis (its version checked there); when Redis is unreachable or refuses
writes it is journalled before it is acknowledged, and its memory copy pinned (it may be the only
one this side of the replay). Redis tracks a written key for this replica in the same round trip
(`TrackedRedis.set`). A write invalidated while in flight, or not tracked, is parked
(`parking`): ours or another replica's may have landed last. A delete leaves a tombstone, also
kept in the reserve: a Redis that loses it must get it again at the next re-seed.

    writes = WritePath(tier, redis, calls, recovery, journal, tracked, parking)
    value = await writes.set("s:{abc}", b"{}", ttl=60)
    existed = await writes.delete("s:{abc}")
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from exporter.core.errors import SessionNotFound, StoreBusy, StoreFull, StoreUnavailable
from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.parking import Parking
from exporter.store.redis_side import RedisSide

# How long a delete is remembered when the session's expiry is unknown here (see `delete`).
TOMBSTONE_GUESS = 86_400.0
# Reads a key past the memory tier (the journal, then Redis): `TieredStore.get_uncached`.
ReadAgain = Callable[[str], Awaitable[StoredValue | None]]


@dataclass(eq=False)
class WritePath(RedisSide):
    parking: Parking
    closing: bool = False  # shutting down: nothing more is journalled

    async def set(
        self, key: str, value: StoredValue, *, replace: bool, sole: bool, coherent: bool
    ) -> StoredValue:
        """See `TieredStore.set`."""
        guard = self.tier.guard
        token = guard.watch(key)
        # Only a key we hold can echo (Redis tracks it for us), and not through the lane.
        held = not sole and self.tier.memory.peek(key) is not None
        echo = guard.expect_echo(key, coherent, held=held and not self.tracked.tracks(key))
        try:
            written, tracked = await self._write(key, value, replace)
        except BaseException:
            if echo:
                guard.echo_arrived(key)
            raise
        finally:
            clean = guard.unwatch(key, token)
        if echo and not written:
            guard.echo_arrived(key)  # journalled: nothing was sent, nothing will echo
        # Our own write goes to memory even while the tier is bypassed (tracking lost): if
        # Redis turns out to be down, the fallback serves it; if tracking comes back instead,
        # the tier is flushed before it serves again. A tier full of journalled writes has
        # no room for it: the journal, read first, serves it then.
        with contextlib.suppress(StoreFull):
            self.tier.fill(key, value, own=True)
        if self.tier.reserve:
            self.tier.reserve.drop(key)  # superseded by this write
        if not clean or not tracked:
            # Invalidated while the write was in flight: by its own echo, or by another
            # replica's write landing just after it. Which landed last is unknown: hold ours
            # in memory, unserved until Redis confirms it. So too a write Redis does not track
            # for us (a Cluster's): the check's read registers the key.
            self.parking.park(key, value)
        return value

    async def _write(self, key: str, value: StoredValue, replace: bool) -> tuple[bool, bool]:
        """(True if written to Redis, False if journalled for replay; whether Redis tracks the
        key for this replica, or need not: see `TrackedRedis.set`)."""
        recovery, redis = self.recovery, self.tracked
        item = ReplayItem(key, value.version, value.expires_at, value)
        if self._to_redis(key):
            switches, began = recovery.switches, self.began()
            try:
                written, tracked = await self.calls.call(
                    lambda: redis.set(key, value, replace=replace)
                )
            except StoreBusy:
                raise
            except StoreUnavailable as exc:
                if self.stale(began):  # Redis answers again since (writes carry their version)
                    return await self._write(key, value, replace)
                recovery.store_error(exc)
            else:
                if not written:
                    self.tier.memory.pop(key)
                    raise SessionNotFound("deleted")
                recovery.acknowledged(item, switches)
                return True, tracked
        if self.closing:
            raise StoreUnavailable("shutting down: writes are no longer accepted", 1.0)
        await self.journal_write(item)
        # In an outage the fallback serves it, and the failback flushes the tier. While Redis
        # only refuses writes, memory serves as a coherent tier: the copy must be registered
        # (parked, its check's tracked read does it).
        return False, not recovery.breaker.closed

    async def delete(self, key: str, held: StoredValue | None, read_again: ReadAgain) -> bool:
        """See `TieredStore.delete`; `held`: what memory held (already dropped)."""
        recovery, tier = self.recovery, self.tier
        if tier.reserve:
            tier.reserve.drop(key)
        if recovery.writes_refused is not None and held is None and recovery.breaker.closed:
            held = await read_again(key)  # Redis still answers reads: does it exist?
            tier.memory.pop(key)  # that read filled memory: a deleted session is not held
            if held is None and not self.journal.get(key):
                return False
        pending = self.journal.get(key)
        known = held if held is not None else pending.value if pending is not None else None
        version = tier.clock.version(known.version if known is not None else 0)
        if self._to_redis(key):
            deleted = await self._delete_in_redis(key, version, held)
            if deleted is not None:
                return deleted
        return await self._journal_delete(key, version, held)

    def _to_redis(self, key: str) -> bool:
        """Whether a write of `key` goes to Redis now. Not while Redis is out or refusing, nor
        while the journal still holds an earlier write of it (journalled just as Redis came back,
        during the replay's awaits): Redis does not have that one yet, so an update would find
        no session there, a delete nothing to delete, and the replay would then undo the delete.
        Journalled after it, it is replayed after it, within a retry interval."""
        recovery = self.recovery
        return (
            recovery.breaker.closed
            and recovery.writes_refused is None
            and self.journal.get(key) is None
        )

    async def _delete_in_redis(
        self, key: str, version: int, held: StoredValue | None
    ) -> bool | None:
        """Whether Redis held `key`; None if Redis failed (then the delete is journalled)."""
        recovery, redis, clock = self.recovery, self.redis, self.tier.clock
        expires_at = held.expires_at if held is not None else clock.now()
        retried: list[bool] = []
        switches, deleting_at, began = recovery.switches, clock.now(), self.began()

        async def attempt() -> float | None:
            retried.append(True)
            return await redis.delete(key, version, expires_at)

        try:
            until = await self.calls.call(attempt)
        except StoreBusy:
            raise
        except StoreUnavailable as exc:
            if not self.stale(began):  # else journalled, replayed within an interval
                recovery.store_error(exc)
            return None
        if until is None and len(retried) > 1:
            # A retry found the tombstone its first attempt left: deleted, its expiry unknown
            # here (held: the session's own; else a day, to be safe).
            until = expires_at if held is not None else deleting_at + TOMBSTONE_GUESS
        if until is not None:
            tombstone = ReplayItem(key, version, until, None)
            recovery.acknowledged(tombstone, switches)
            self.tier.reserve.keep(tombstone)  # a Redis that loses it must get it again
        elif self.tier.is_session(key):
            await recovery.check_miss(deleting_at)
        return until is not None

    async def _journal_delete(self, key: str, version: int, held: StoredValue | None) -> bool:
        pending = self.journal.get(key)
        if held is None and pending is None:
            raise self.recovery.not_held()
        if held is None and pending is not None and pending.value is None:
            return False  # already deleted during this outage
        known = held if held is not None else pending.value  # type: ignore[union-attr]
        expires_at = known.expires_at if known else self.tier.clock.now()
        tombstone = ReplayItem(key, version, expires_at, None)
        await self.journal_write(tombstone)
        self.tier.reserve.keep(tombstone)  # a Redis that loses it must get it again
        return True

    async def journal_write(self, item: ReplayItem) -> None:
        """Journal a write before it is acknowledged (JournalFull: refused, nothing kept), and
        pin its memory copy: it may be the only one this side of the replay."""
        await self.journal.record(item)
        self.tier.memory.pin(item.key)
        await self.recovery.journalled()
