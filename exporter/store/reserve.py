"""What a replica keeps to re-seed a Redis that lost its data: values memory stopped serving, and
the deletes it made.

With Redis running without persistence, the replicas' memory tiers hold the only other copies of
its sessions. The tier drops entries for coherence's sake (at failback, when tracking is lost),
and the next restart would then lose them; so those values are kept here, never served. A delete
is kept here too, until the session's own expiry: its tombstone goes with Redis's data, and a
re-seed that wrote the session back without it would bring a deleted session back. A re-seed
writes everything back version-checked (a newer value or a delete always wins). A value changed
by another replica leaves the reserve: that replica holds the newer truth. Bounded like the tier
(entries and bytes), oldest dropped first; expired entries are skipped.

    >>> reserve = Reserve(max_entries=2, max_bytes=1 << 20)
    >>> for key in "abc": reserve.keep(ReplayItem(key, 1, 100.0, None))
    >>> sorted(reserve.live(now=50.0))
    ['b', 'c']
"""

from __future__ import annotations

from exporter.store.contract import ReplayItem


class Reserve:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: dict[str, ReplayItem] = {}

    def __len__(self) -> int:
        return len(self._items)

    def keep(self, item: ReplayItem) -> None:
        self.drop(item.key)
        self._items[item.key] = item
        self.bytes += _size(item)
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            self.drop(next(iter(self._items)))

    def drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.bytes -= _size(item)

    def changed_elsewhere(self, key: str) -> None:
        """Another replica changed `key`: a value kept here is stale, whoever changed it holds
        the newer truth. A delete stays: nothing newer than a delete can exist (and the change
        reported may be this very delete's echo)."""
        item = self._items.get(key)
        if item is not None and item.value is not None:
            self.drop(key)

    def live(self, now: float) -> dict[str, ReplayItem]:
        """The writes and deletes not expired at `now` (the expired ones are forgotten)."""
        for key in [key for key, item in self._items.items() if item.expires_at <= now]:
            self.drop(key)
        return dict(self._items)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0


def _size(item: ReplayItem) -> int:
    return len(item.key) + (item.value.size if item.value is not None else 0)
