"""The replay journal: writes made while Redis was unreachable, latest per key, bounded.

Pure and synchronous. One entry per key (a later write supersedes an earlier one, so a session
updated a thousand times during an outage costs one replay). When the bound is reached the oldest
entry is dropped and counted; the caller logs and exports that, so a loss is never silent.

    >>> journal = ReplayJournal(max_entries=1)
    >>> journal.record(ReplayItem("a", 1, 9e9, None)); journal.record(ReplayItem("b", 2, 9e9, None))
    >>> journal.dropped, len(journal)
    (1, 1)
"""

from __future__ import annotations

from collections import OrderedDict

from exporter.sessions.redis_store import ReplayItem


class ReplayJournal:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, ReplayItem] = OrderedDict()
        self.dropped = 0
        self.replayed = 0

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def get(self, key: str) -> ReplayItem | None:
        return self._items.get(key)

    def record(self, item: ReplayItem) -> ReplayItem | None:
        """Journal `item`; return the entry dropped to make room, if any."""
        self._items.pop(item.key, None)
        self._items[item.key] = item
        if len(self._items) <= self.max_entries:
            return None
        _, dropped = self._items.popitem(last=False)
        self.dropped += 1
        return dropped

    def peek(self, limit: int) -> list[ReplayItem]:
        """The oldest `limit` entries, left in place until `discard` confirms them."""
        batch: list[ReplayItem] = []
        for item in self._items.values():
            if len(batch) >= limit:
                break
            batch.append(item)
        return batch

    def discard(self, items: list[ReplayItem]) -> None:
        """Remove replayed entries, unless a newer write for the same key arrived meanwhile."""
        for item in items:
            if self._items.get(item.key) is item:
                del self._items[item.key]
        self.replayed += len(items)

    def clear(self) -> None:
        self._items.clear()
