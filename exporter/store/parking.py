"""Parked own writes: kept in memory but not served until Redis confirms them.

An invalidation matching one of our own writes may be its echo (Redis tracked the key for another
of our connections than the one that wrote), or another replica's write that landed just after
ours: the message names the key, not the write. So the entry is *parked*: it stays in memory,
unserved (`MemoryReads` skips parked keys) until one GET shows Redis still holds our version.
Reads arriving meanwhile wait for that check (`confirmed`, about one round trip) rather than
reading Redis themselves. One task checks every parked key, a batch per round (one `MGET`,
tracked: whatever it keeps in memory, Redis then tracks for this replica; see tracking.py).

    parking = Parking(tier, redis, calls, recovery, journal, tracked)
    parking.park("s:{abc}", our_value)          # from TieredStore.invalidate or set
    value = await parking.confirmed("s:{abc}")  # a read of it: ours once confirmed, else None
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from dataclasses import dataclass
from functools import partial

from exporter.core.errors import StoreUnavailable
from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.store.contract import StoredValue
from exporter.store.redis_side import RedisSide

# Re-checks of a parked own write before giving up on it (the next read then goes to Redis).
PARK_CHECKS = 3
PARK_BATCH = 256
# The longest a read waits for its key's parked write to be checked (rounds are one MGET).
PARK_WAIT = 0.5


@dataclass(eq=False)
class Parking(RedisSide):
    def __post_init__(self) -> None:
        # key -> (our value, the tier's epoch when parked, checks left); shared with the reads
        self.parked = self.tier.reads.parked
        self._checker: asyncio.Task[None] | None = None
        self._round: asyncio.Future[None] | None = None

    def __contains__(self, key: str) -> bool:
        return key in self.parked

    async def close(self) -> None:
        await cancel_and_wait(self._checker)

    def park(self, key: str, ours: StoredValue) -> None:
        """Stop serving our own write from memory until a GET shows Redis still holds it.
        Not while Redis is unreadable (breaker open): there is nothing to check against, and
        our write is what the fallback serves (the failback flushes the tier anyway)."""
        tier = self.tier
        if tier.reads.bypass or not self.recovery.breaker.closed:
            return
        parked = self.parked.get(key)
        if parked is not None and parked[0].version > ours.version:
            ours = parked[0]
        # (Re-)parking restarts the count: a check in flight may predate this invalidation, and
        # its key's watch then tells it to look again.
        self.parked[key] = (ours, tier.guard.epoch, PARK_CHECKS)
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._check(), name="store-park-check")

    async def confirmed(self, key: str) -> StoredValue | None:
        """After a memory miss: the memory value once a parked own write is confirmed (a wait of
        about one Redis round trip), else None (nothing parked, or Redis holds another value)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PARK_WAIT
        while key in self.parked and loop.time() < deadline:
            check_round = self._round
            if check_round is None:
                # Between rounds (about to start one, or pausing after an unreadable Redis):
                # a fixed number of yields could give up before the next round, and a miss
                # here becomes a 503 in an outage.
                await asyncio.sleep(0.001)
            else:
                await asyncio.shield(check_round)
        return self.tier.reads.get(key)

    async def _check(self) -> None:
        """Check parked own writes against Redis: one MGET per round."""
        guard, breaker = self.tier.guard, self.recovery.breaker
        while self.parked:
            raise_if_cancelled()
            check_round = self._round = asyncio.get_running_loop().create_future()
            try:
                keys = list(itertools.islice(self.parked, PARK_BATCH))
                tokens = [guard.watch(key) for key in keys]
                values: list[StoredValue | None] | None = None
                began = self.began()
                try:
                    if breaker.closed:  # else a fallback: our own writes are what we serve
                        read = await self.calls.call(partial(self.tracked.get_many, keys))
                        # A read Redis does not track for us confirms nothing memory may serve,
                        # unless memory is not serving as a coherent tier anyway (bypassed: the
                        # tier is flushed before it serves again; a fallback: it serves its own).
                        kept = read[1] or self.tier.reads.bypass or self.recovery.fallback_active
                        values = read[0] if kept else None
                except StoreUnavailable as exc:
                    if not self.stale(began):  # as any failed call: the fallback serves
                        self.recovery.report_unavailable(exc)
                finally:
                    cleans = [guard.unwatch(k, t) for k, t in zip(keys, tokens, strict=True)]
                for index, key in enumerate(keys):
                    current = values[index] if values is not None else None
                    self._settle(key, current, cleans[index], values is not None)
            finally:
                self._round = None
                check_round.set_result(None)
            if values is None:
                await asyncio.sleep(0.01)

    def _settle(self, key: str, current: StoredValue | None, clean: bool, read: bool) -> None:
        parked = self.parked.get(key)
        if parked is None:
            return
        tier = self.tier
        ours, epoch, left = parked
        outcome = judge(
            ours,
            current,
            left=left,
            read=read,
            clean=clean,
            same_epoch=epoch == tier.guard.epoch,
            fallback_active=self.recovery.fallback_active,
            journalled=self.journal.get(key) is not None,
            bypass=tier.reads.bypass,
        )
        if outcome is Outcome.LOOK_AGAIN:
            self.parked[key] = (ours, epoch, left - 1)
            return
        del self.parked[key]
        if outcome is Outcome.UNHOLD:
            tier.unhold(key)
        elif outcome is Outcome.DROP:
            tier.memory.pop(key)
        elif outcome in (Outcome.TAKE_NEWER, Outcome.LOST):
            tier.counters.invalidated("remote", 1)  # another replica's write landed after ours
            if current is not None and outcome is Outcome.TAKE_NEWER:
                tier.memory.put(key, current)
            else:
                tier.unhold(key)


class Outcome(enum.Enum):
    """What one check of a parked own write decides."""

    FORGET = "forget"  # stop checking, leave memory as it is
    LOOK_AGAIN = "look_again"  # check once more
    SERVE = "serve"  # ours stands: serve it again
    UNHOLD = "unhold"  # Redis unreadable yet no fallback: reads go there; ours kept aside
    DROP = "drop"  # changed again elsewhere meanwhile: that replica holds the newer value
    TAKE_NEWER = "take_newer"  # another replica's newer write landed after ours: serve that
    LOST = "lost"  # Redis holds an older value or none (a restart): ours kept for a re-seed


def judge(
    ours: StoredValue,
    current: StoredValue | None,
    *,
    left: int,
    read: bool,
    clean: bool,
    same_epoch: bool,
    fallback_active: bool,
    journalled: bool,
    bypass: bool,
) -> Outcome:
    """The decision for one parked own write, `ours`, after one check round (pure).

    `current`: what Redis holds (`read`: the GET answered); `left`: checks left; `clean`: no
    invalidation of the key during the GET; `same_epoch`: the tier was neither cleared nor
    changed coherence since parking; `journalled`: ours awaits replay.

    >>> mine = StoredValue(b"", version=2, expires_at=60.0)
    >>> common = dict(left=3, read=True, clean=True, same_epoch=True, fallback_active=False,
    ...               journalled=False, bypass=False)
    >>> judge(mine, mine, **common).name
    'SERVE'
    >>> judge(mine, StoredValue(b"", version=3, expires_at=60.0), **common).name
    'TAKE_NEWER'
    >>> judge(mine, None, **common).name
    'LOST'
    """
    if not same_epoch:
        # The tier was cleared (the entry went with it) or coherence changed (then memory is
        # bypassed, flushed, or serving as the fallback, which needs our own write).
        return Outcome.FORGET
    if not read and fallback_active:
        return Outcome.FORGET  # during a fallback our own write is what this replica serves
    if (not read or not clean) and left > 1:
        return Outcome.LOOK_AGAIN  # unreadable, or invalidated again meanwhile
    if not read:
        return Outcome.UNHOLD
    if not clean:
        return Outcome.DROP
    if (current is not None and current.version == ours.version) or journalled:
        return Outcome.SERVE  # Redis holds ours, or the replay settles it by version
    if current is not None and current.version > ours.version and not bypass:
        return Outcome.TAKE_NEWER
    return Outcome.LOST
