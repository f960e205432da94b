"""What the memory tier may answer, as plain synchronous code: the first step of the hottest read.

No I/O and no coroutine, so that `make speedups` can compile it (`exporter.app.speedups`: mypyc
still crashes on some coroutine paths). `TieredStore` owns a `MemoryReads`;
`sessions.held_sessions` reads a session through it.

    >>> reads = MemoryReads(MemoryStore(10, 1 << 20))
    >>> reads.get("s:{abc}") is None
    True
"""

from __future__ import annotations

from exporter.store.contract import StoredValue
from exporter.store.memory_store import MemoryStore

# key -> (our value, the tier's epoch when parked, checks left): see TieredStore's parking.
Parked = dict[str, tuple[StoredValue, int, int]]


class MemoryReads:
    """What the memory tier may answer: nothing while `bypass` (coherence unknown), and not a
    key whose own write is `parked` (invalidated, not yet confirmed by Redis)."""

    def __init__(self, memory: MemoryStore) -> None:
        self.memory = memory
        self.bypass = False
        self.parked: Parked = {}

    def get(self, key: str) -> StoredValue | None:
        """The memory tier's live value for `key` if it may be served (no I/O, nothing recorded)."""
        if self.bypass or (self.parked and key in self.parked):
            return None
        return self.memory.get(key)
