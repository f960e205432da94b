"""The replayer: what this replica writes back to Redis after an outage or a data loss.

Three sources, each sent with the journal's version checks (`RedisStore.replay`: never over a
newer value or a delete), so that sending one twice is harmless:

- **the journal** (`replay_all`): the writes made while Redis could not take them;
- **the re-send ring** (`acknowledged`, `resend_recent`, `replay_all`): writes Redis acknowledged
  that a new master may lack. After a Sentinel master switch, every write acknowledged in the
  last `RESEND_WINDOW` seconds (`RecentWrites`), and any acknowledged after the switch was heard
  (the old master took it);
- **an epoch change** (`follow`): Redis holds other data than the epoch this replica followed.
  Flushed by an operator: memory is dropped too. Held by a new server or process: the recent
  writes are re-sent. Came back empty: re-seeded from what memory holds (`_reseed`).

Called by the outage driver (`recovery.Recovery`: `replay_all` in its recovery round,
`acknowledged` and `resend_recent` as writes and switches happen, `follow` when fleet membership
sees a new epoch); it calls nothing of theirs. Redis through `ReplayRedis`, the memory tier
through `ReplaySide` (the tiered store).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.store.contract import ReplayItem
from exporter.store.fleet import EpochChange
from exporter.store.journal import Journal
from exporter.store.recent_writes import RecentWrites

log = logging.getLogger(__name__)

REPLAY_BATCH = 256
# How long acknowledged writes are kept to be sent again after a Sentinel master switch. The
# switch is heard at once through the sentinels' pub/sub, or by the 5 s topology check; but the
# new master's own replica may lag far longer: Sentinel turns the old master into one about 10 s
# after it is back, then it resyncs in full, and a failover before that promotes it without the
# writes of those seconds (torture seed 13 round 0: two failovers 16 s apart, under load, lost
# writes 16 s old when this was 15 s). Costs memory and one re-send per switch of that many
# seconds of this replica's writes.
RESEND_WINDOW = 30.0


class ReplayRedis(Protocol):
    """What the replayer needs of Redis (`RedisStore` provides it)."""

    async def replay(self, items: Sequence[ReplayItem]) -> list[bool]: ...


class ReplaySide(Protocol):
    """What the replayer needs of the tiered store's memory tier."""

    def held_sessions(self) -> list[ReplayItem]: ...
    def expect_echoes(self, items: list[ReplayItem]) -> list[bool]: ...
    def echoes_missed(
        self, items: list[ReplayItem], expected: list[bool], sent: list[bool]
    ) -> None: ...
    def flush_memory(self, reason: str, *, keep_for_reseed: bool = True) -> int: ...
    def replayed(self, item: ReplayItem, written: bool) -> None: ...


class Replayer:
    def __init__(
        self,
        redis: ReplayRedis,
        store: ReplaySide,
        journal: Journal,
        *,
        metrics: Metrics,
        events: EventLog | None = None,
        recent: RecentWrites | None = None,
    ) -> None:
        self.redis = redis
        self.store = store
        self.journal = journal
        self.events = events
        self.recent = recent  # Sentinel only: what a master switch re-sends
        self._resend: dict[str, ReplayItem] = {}  # acknowledged writes a new master may lack
        self._replayed_child = metrics.store_replayed
        self._reseeded_child = metrics.store_reseeded

    @property
    def resends(self) -> int:
        """Acknowledged writes waiting to be sent again."""
        return len(self._resend)

    def acknowledged(self, item: ReplayItem, *, late: bool) -> bool:
        """Redis took a write: remember it for a master switch. A `late` one (it completed after
        a switch was heard: the old master took it) is queued to be sent again; whether it was."""
        if self.recent is None:
            return False
        self.recent.add(item)
        if late:
            self._resend[item.key] = item
        return late

    def resend_recent(self) -> None:
        """The master switched: every write acknowledged lately goes to the new one again."""
        if self.recent is not None:
            for item in self.recent.snapshot():
                self._resend[item.key] = item

    async def replay_all(self) -> tuple[int, int]:
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
            for item, written in zip(batch, results, strict=True):
                if self.journal.get(item.key) is None:
                    self.store.replayed(item, written)
            written = sum(results)
            replayed, skipped = replayed + written, skipped + len(results) - written
            self._replayed_child.inc(len(results))
        return replayed, skipped

    async def follow(self, change: EpochChange) -> None:
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

    async def _send(self, items: list[ReplayItem]) -> list[bool]:
        """Replay `items` (version-checked in Redis); whether each was written. What a replay
        wrote only reached Redis now: a master switch soon after must re-send it too. So must
        one skipped: the server may hold it only because it took the very write that timed
        out (a hung master waking up), and a master that Sentinel replaced meanwhile loses it
        in its resync. Re-sending an older one costs nothing: the version check skips it."""
        expected = self.store.expect_echoes(items)
        sent = [False] * len(items)
        try:
            sent = await self.redis.replay(items)
        finally:
            self.store.echoes_missed(items, expected, sent)
        if self.recent is not None:
            for item in items:
                self.recent.add(item)
        return sent

    def _event(self, type: str, message: str, **details: object) -> None:
        if self.events is not None:
            self.events.record(type, message, **details)
