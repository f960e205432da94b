"""The hottest read, a session the memory tier holds decoded, as plain synchronous code.

No I/O and no coroutine, so that `make speedups` can compile it (`exporter.speedups`: mypyc still
crashes on some coroutine paths). `TieredStore` owns a `MemoryReads` (what it allows memory to
answer) and `SessionManager.get_held` is a `HeldSessions`; everything slower stays in those
classes.

    >>> reads = MemoryReads(MemoryStore(10, 1 << 20))
    >>> reads.get("s:{abc}") is None
    True
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from exporter.sessions.memory_store import MemoryStore
from exporter.sessions.session import NAMESPACE, Session
from exporter.sessions.store import StoredValue

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


class HeldSessions:
    """`SessionManager.get` when the memory tier holds the session decoded, recorded as that get
    by `record_hit(session_id, started, now)`; None otherwise (then the awaited `get` reads)."""

    def __init__(self, reads: MemoryReads, record_hit: Callable[[str, float, float], None]) -> None:
        self._reads = reads
        self._record_hit = record_hit

    def get(self, session_id: str) -> Session | None:
        started = perf_counter()
        # session_key(), inlined. Only valid ids are ever stored: the id check can wait.
        value = self._reads.get(NAMESPACE + "{" + session_id + "}")
        if value is None:
            return None
        session = value.decoded
        if not isinstance(session, Session):  # held, not decoded yet (filled by a Redis read)
            return None
        self._record_hit(session_id, started, perf_counter())
        return session
