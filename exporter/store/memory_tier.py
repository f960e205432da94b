"""The memory tier as the tiered store manages it: what it may serve (`reads`), which calls in
flight may still fill it (`guard`), and what it keeps aside, never served, for a re-seed
(`reserve`).

Memory serves while its coherence is known (`coherent`: invalidations are tracked, see
coherence.py) or as the fallback during a Redis outage (`fallback`: flushed at failback);
otherwise reads bypass it, and only our own writes fill it.

Everything here is in-process and synchronous: the paths that call Redis (`write_path`,
`parking`, `recovery`) use it, and unit tests drive it directly.

    tier = MemoryTier(MemoryStore(10, 1 << 20), clock, counters, redis_backed=True)
    tier.fill("s:{abc}", value)
    tier.unhold("s:{abc}")         # no longer served; kept in the reserve for a re-seed
    tier.held_sessions()           # what a re-seed would write back
"""

from __future__ import annotations

from exporter.core.clock import FleetClock
from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.memory_reads import MemoryReads
from exporter.store.memory_store import MemoryStore
from exporter.store.reserve import Reserve
from exporter.store.store_reporting import StoreCounters
from exporter.store.write_guard import WriteGuard


class MemoryTier:
    def __init__(
        self,
        memory: MemoryStore,
        clock: FleetClock,
        counters: StoreCounters,
        *,
        redis_backed: bool,
        authoritative_prefixes: tuple[str, ...] = ("s:",),
        tracked_prefixes: tuple[str, ...] = (),
    ) -> None:
        """`authoritative_prefixes`: keys whose misses must be authoritative (sessions; not
        cached Figma responses). `tracked_prefixes`: keys whose own writes echo (coherence)."""
        self.memory = memory
        self.clock = clock
        self.counters = counters
        self.redis_backed = redis_backed
        self.authoritative_prefixes = authoritative_prefixes
        # What memory may answer: `reads.get(key)` is the hot path's first step (no I/O, nothing
        # recorded). While `reads.bypass`, reads skip the tier and writes do not fill it.
        self.reads = MemoryReads(memory)
        self.guard = WriteGuard(tracked_prefixes)
        # What a re-seed needs beyond memory (see reserve.py): sessions dropped for coherence's
        # sake, and the deletes made here.
        self.reserve = Reserve(memory.max_entries, memory.max_bytes)
        self.coherent = True
        self.fallback = False

    def serve_fallback(self, active: bool) -> None:
        """Redis became unreachable (`active`) or answers again."""
        self.fallback = active
        self._update_bypass()

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
        if not self.coherent and not self.fallback:
            self.flush("tracking_lost")
        self.coherent = True
        self._update_bypass()

    def _update_bypass(self) -> None:
        self.reads.bypass = not self.coherent and not self.fallback

    def is_session(self, key: str) -> bool:
        return key.startswith(self.authoritative_prefixes)

    def fill(self, key: str, value: StoredValue, *, own: bool = False) -> StoredValue:
        """Put `value` in memory unless memory already holds a newer version of the key (while
        bypassed, only our `own` writes: see `WritePath.set`); what memory serves now."""
        if self.reads.bypass and not own:
            return value
        current = self.memory.peek(key)
        if current is not None and current.version > value.version:
            return self.memory.get(key) or value  # a newer local write landed meanwhile
        self.memory.put(key, value)
        if self.reserve:
            self.reserve.drop(key)  # held in memory again
        return value

    def unhold(self, key: str) -> bool:
        """Stop serving `key` from memory, keeping a session's value aside for a re-seed (see
        `flush`); whether memory held it."""
        value = self.memory.pop(key)
        if value is None:
            return False
        if self.redis_backed and self.is_session(key):
            self.reserve.keep(ReplayItem(key, value.version, value.expires_at, value))
        return True

    def changed_elsewhere(self, key: str, reason: str) -> bool:
        """Another replica changed `key`: drop our copy (and the reserve's); whether we held it."""
        dropped = self.memory.pop(key) is not None
        if self.reserve:
            self.reserve.changed_elsewhere(key)
        if dropped:
            self.counters.invalidated(reason, 1)
        return dropped

    def clear(self, prefix: str | None = None) -> int:
        """Drop entries (all, or under `prefix`) that exist elsewhere too (Redis); the only copies
        (memory-only sessions, journalled writes) stay. Returns how many."""
        self.guard.invalidate_all()
        count = self.memory.clear(prefix, keep_pinned=True)
        self.counters.invalidated("clear", count)
        return count

    def flush(self, reason: str, *, keep_for_reseed: bool = True) -> int:
        """Drop the whole tier because its coherence is unknown; returns how many.

        The sessions it held are kept aside, never served (`keep_for_reseed`): for a Redis
        without persistence they may be the only copies left, and a later restart re-seeds from
        them (version-checked, so a stale one loses to a newer copy). Not after an operator's
        FLUSHALL, which is respected."""
        self.guard.invalidate_all()
        if keep_for_reseed and self.redis_backed:
            for item in self._held_in_memory().values():
                self.reserve.keep(item)
        else:
            self.reserve.clear()
        count = self.memory.clear()
        self.counters.invalidated(reason, count)
        return count

    def held_sessions(self) -> list[ReplayItem]:
        """What this replica knows of its sessions, to re-seed Redis with: the live values in
        memory, and from the reserve what memory stopped serving and the deletes made here."""
        items = self.reserve.live(self.clock.now())
        for key, item in self._held_in_memory().items():
            kept = items.get(key)
            if kept is None or item.version > kept.version:  # the newest; a delete on a tie
                items[key] = item
        return list(items.values())

    def expect_echoes(self, items: list[ReplayItem]) -> list[bool]:
        """Replayed writes echo like our own writes: so expected, they are checked, not taken
        for another replica's (which would drop what the reserve keeps for a re-seed). A session
        memory no longer holds may echo too: Redis still tracks a key for us after a flush (at
        a failback) put it in the reserve (seed 11 round 15 of the torture run lost 7 creates
        so, in a Redis restarted empty)."""
        peek, guard, session = self.memory.peek, self.guard, self.is_session
        return [
            guard.expect_echo(
                item.key, self.coherent, held=session(item.key) or peek(item.key) is not None
            )
            for item in items
        ]

    def echoes_missed(
        self, items: list[ReplayItem], expected: list[bool], sent: list[bool]
    ) -> None:
        """Replayed writes skipped as older (or never sent) echo nothing."""
        for item, echo, written in zip(items, expected, sent, strict=True):
            if echo and not written:
                self.guard.echo_arrived(item.key)

    def _held_in_memory(self) -> dict[str, ReplayItem]:
        now, held = self.clock.now(), self.memory.keys()
        return {
            key: ReplayItem(key, value.version, value.expires_at, value)
            for key in held
            if self.is_session(key)
            and (value := self.memory.peek(key)) is not None
            and value.remaining(now) > 0
        }
