"""The durable journal's index: the latest durable record of each key, oldest first, in memory.

What `DurableJournal` answers `get`/`peek`/`discard` from, and what a compaction writes back: one
entry per key (a later record of a key replaces the earlier one and moves to the end), with the
encoded size of that record, so the journal knows its live bytes (`bytes`) without reading the
file. Only records already on disk are applied (`apply`: after their fsync, or at start-up).
Pure: no I/O, no clock.

    >>> index = JournalIndex()
    >>> index.apply(ReplayItem("a", 1, 9e9, None), 40)
    >>> index.apply(ReplayItem("a", 2, 9e9, None), 42)  # the same key again: replaces it
    >>> len(index), index.bytes, index.get("a").version
    (1, 42, 2)
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

from exporter.store.contract import ReplayItem


class JournalIndex:
    def __init__(self) -> None:
        self._items: OrderedDict[str, ReplayItem] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.bytes = 0  # live bytes: the encoded size of the latest record of each key

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str) -> ReplayItem | None:
        return self._items.get(key)

    def peek(self, limit: int) -> list[ReplayItem]:
        """The oldest `limit` entries, left in place."""
        return list(itertools.islice(self._items.values(), limit))

    def entries(self) -> list[ReplayItem]:
        """Every entry, oldest first: what a compaction keeps."""
        return list(self._items.values())

    def apply(self, item: ReplayItem, size: int) -> None:
        """A record of `size` bytes for `item` is on disk: it is now the key's entry."""
        self._items.pop(item.key, None)
        self._items[item.key] = item
        self.bytes += size - self._sizes.get(item.key, 0)
        self._sizes[item.key] = size

    def discard(self, items: list[ReplayItem]) -> None:
        """Remove replayed entries, unless a newer write for the same key arrived meanwhile."""
        for item in items:
            if self._items.get(item.key) is item:
                del self._items[item.key]
                self.bytes -= self._sizes.pop(item.key)

    def clear(self) -> None:
        self._items.clear()
        self._sizes.clear()
        self.bytes = 0
