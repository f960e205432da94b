"""What recovery asks of the tiered store (`recovery.StoreSide`): the memory tier's held sessions,
echo bookkeeping and flushes, and the store's way of calling Redis. The store hands recovery this
view instead of itself, so the store's façade keeps only its public API.

    side = RecoverySide(tier, calls, fallback_active=lambda: store.fallback_active, park=park)
    Recovery(redis, side, journal, ...)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.memory_tier import MemoryTier
from exporter.store.redis_calls import RedisCalls

T = TypeVar("T")


class RecoverySide:
    def __init__(
        self,
        tier: MemoryTier,
        calls: RedisCalls,
        *,
        fallback_active: Callable[[], bool],
        park: Callable[[str, StoredValue], None],
    ) -> None:
        """`park(key, value)`: hold memory's copy unserved until Redis confirms it (parking.py)."""
        self.tier = tier
        self.calls = calls
        self._fallback_active = fallback_active
        self._park = park

    async def redis_call(self, command: Callable[[], Awaitable[T]]) -> T:
        return await self.calls.call(command)

    def held_sessions(self) -> list[ReplayItem]:
        return self.tier.held_sessions()

    def expect_echoes(self, items: list[ReplayItem]) -> list[bool]:
        return self.tier.expect_echoes(items)

    def echoes_missed(
        self, items: list[ReplayItem], expected: list[bool], sent: list[bool]
    ) -> None:
        self.tier.echoes_missed(items, expected, sent)

    def flush_memory(self, reason: str = "flush", *, keep_for_reseed: bool = True) -> int:
        return self.tier.flush(reason, keep_for_reseed=keep_for_reseed)

    def replayed(self, item: ReplayItem, written: bool) -> None:
        """The journal no longer holds `item`'s key: its memory copy may be evicted again, and
        is parked (unserved until a GET shows what Redis holds: then it is served, or replaced
        by Redis's value). A fallback meanwhile serves it, as it serves every own write.

        Not written: Redis held that version already (the very write that timed out, taken by
        a hung server when it woke), or a newer value or a delete made through another replica
        meanwhile. In the second case the copy lost, and nothing else would drop it (a refusal
        ends without a flush; no invalidation follows a write that came first).

        Written: another replica's write may have landed just after it, before this replica's
        check of the replay's echo read Redis. Redis told this replica nothing of that write
        (the echo had used up the key's registration), and the check served the copy because
        the journal still held the key ("the replay settles it"): nothing else would drop it
        (seed 13 round 5 and seed 12 round 11 of the torture run, on Cluster: a stale read
        after the refusal ended, for good).

        This replica may hold the session's latest write while memory does not (another
        replica's older journalled write, replayed first, invalidated it): it is kept in the
        reserve, so that a Redis that loses its data gets it back at the re-seed,
        version-checked (a newer value or a delete elsewhere still wins)."""
        tier = self.tier
        tier.memory.unpin(item.key)
        held = tier.memory.peek(item.key)
        if held is not None:
            self._park(item.key, held)
        if tier.is_session(item.key):
            tier.reserve.keep(item)

    def fallback_changed(self) -> None:
        self.tier.serve_fallback(self._fallback_active())
