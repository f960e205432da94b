"""The hottest read, a session the memory tier holds decoded, as plain synchronous code.

No I/O and no coroutine, so that `make speedups` can compile it (see `exporter.app.speedups`).
`SessionManager.get_held` is a `HeldSessions`; everything slower stays in `SessionManager.get`.

    held = HeldSessions(store.reads, record_hit=lambda session_id, started, now: None)
    held.get("abc")   # the Session, or None: then the awaited get reads
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from exporter.sessions.session import NAMESPACE, Session
from exporter.store.memory_reads import MemoryReads


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
