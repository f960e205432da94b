"""Sessions the memory tier stopped serving, kept to re-seed a Redis that lost its data.

With Redis running without persistence, the replicas' memory tiers hold the only other copies of
its sessions. The tier drops entries for coherence's sake (at failback, when tracking is lost,
on another replica's change), and the next restart would then lose them. So those values are
kept here, never served: a re-seed writes them back version-checked, so a stale copy never wins
over a newer one, and at worst re-seeds an older value instead of losing the session. Bounded
like the tier (entries and payload bytes), oldest dropped first; expired values are skipped.

    >>> reserve = Reserve(max_entries=2, max_bytes=1 << 20)
    >>> for key in "abc": reserve.keep(key, StoredValue(b"x", 1, 100.0))
    >>> sorted(reserve.live(now=50.0))
    ['b', 'c']
"""

from __future__ import annotations

from exporter.sessions.store import StoredValue


class Reserve:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._values: dict[str, StoredValue] = {}

    def __len__(self) -> int:
        return len(self._values)

    def keep(self, key: str, value: StoredValue) -> None:
        self.drop(key)
        self._values[key] = value
        self.bytes += value.size
        while len(self._values) > self.max_entries or self.bytes > self.max_bytes:
            self.drop(next(iter(self._values)))

    def drop(self, key: str) -> None:
        value = self._values.pop(key, None)
        if value is not None:
            self.bytes -= value.size

    def live(self, now: float) -> dict[str, StoredValue]:
        """The values not expired at `now` (the expired ones are forgotten)."""
        for key in [key for key, value in self._values.items() if value.remaining(now) <= 0]:
            self.drop(key)
        return dict(self._values)

    def clear(self) -> None:
        self._values.clear()
        self.bytes = 0
