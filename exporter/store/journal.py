"""The in-memory replay journal, and the contract both journals keep.

Writes made while Redis cannot take them, latest per key (a session updated a thousand times
during an outage costs one replay), bounded. A full journal refuses the write (`JournalFull`:
503 + Retry-After) before it is acknowledged; it never drops an entry it accepted.

`ReplayJournal` keeps entries in this process only: they survive a Redis failure, not a crash of
the process. `DurableJournal` (`--journal-dir`) keeps the same contract on disk. Each reports its
`condition()` (can it take writes; damaged files set aside) for health checks and metrics.

A journal keeps what it is given: it never compares an entry's `version` or `expires_at` with a
clock (their meaning belongs to the store), so an expired entry stays until it is replayed.

    >>> import asyncio
    >>> journal = ReplayJournal(max_entries=1)
    >>> asyncio.run(journal.record(ReplayItem("a", 1, 9e9, None))); len(journal)
    1
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from exporter.core.errors import JournalFull
from exporter.store.contract import ReplayItem


@dataclass(frozen=True, slots=True)
class JournalCondition:
    """How a journal is doing now: attributes read, no I/O (health checks, scrapes)."""

    write_error: str | None = None  # why its disk refuses appends (None: it takes them)
    corrupt_files: int = 0  # damaged journal files set aside in its directory, kept for a look

    @property
    def writable(self) -> bool:
        return self.write_error is None


HEALTHY = JournalCondition()


class Journal(Protocol):
    """What the tiered store needs of a journal."""

    durable: bool  # survives a crash of this process
    max_entries: int
    replayed: int
    dropped: int  # never moves: a full journal refuses instead (kept for the metric's contract)

    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def get(self, key: str) -> ReplayItem | None: ...
    async def record(self, item: ReplayItem) -> None: ...
    def peek(self, limit: int) -> list[ReplayItem]: ...
    def discard(self, items: list[ReplayItem]) -> None: ...
    def condition(self) -> JournalCondition: ...
    async def close(self) -> None: ...


class ReplayJournal:
    durable = False

    def __init__(self, max_entries: int, retry_after: float = 1.0) -> None:
        self.max_entries = max_entries
        self.retry_after = retry_after
        self._items: OrderedDict[str, ReplayItem] = OrderedDict()
        self.dropped = 0
        self.replayed = 0

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def get(self, key: str) -> ReplayItem | None:
        return self._items.get(key)

    async def record(self, item: ReplayItem) -> None:
        """Journal `item` (replacing the key's earlier entry); JournalFull when at the bound."""
        if item.key not in self._items and len(self._items) >= self.max_entries:
            raise JournalFull(
                f"outage journal full ({self.max_entries} entries): retry once Redis is back",
                self.retry_after,
            )
        self._items.pop(item.key, None)
        self._items[item.key] = item

    def peek(self, limit: int) -> list[ReplayItem]:
        """The oldest `limit` entries, left in place until `discard` confirms them."""
        return list(itertools.islice(self._items.values(), limit))

    def discard(self, items: list[ReplayItem]) -> None:
        """Remove replayed entries, unless a newer write for the same key arrived meanwhile."""
        for item in items:
            if self._items.get(item.key) is item:
                del self._items[item.key]
        self.replayed += len(items)

    def clear(self) -> None:
        self._items.clear()

    def condition(self) -> JournalCondition:
        """Always writable (memory), never damaged (nothing is read back)."""
        return HEALTHY

    async def close(self) -> None:
        """Nothing to keep: what is still here is lost with the process (no --journal-dir)."""
