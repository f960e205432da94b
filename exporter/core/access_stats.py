"""Per-session access statistics: reads, memory-tier hits, writes and response times.

Kept per replica in a bounded map (the oldest tracked sessions are forgotten first), shown by
`GET /api/sessions/{id}/metrics`, and never used as a metric label: per-session detail belongs in
the JSON API, where it cannot multiply series.

    >>> stats = AccessStats(max_sessions=2)
    >>> stats.memory_read("a", 0.002, time.perf_counter())
    >>> stats.view("a")["reads"]
    1
"""

from __future__ import annotations

import time
from itertools import islice
from typing import Any

from exporter.core.acyclic import untrack

DEFAULT_MAX_SESSIONS = 10_000


class SessionAccess:
    __slots__ = ("last", "max_seconds", "memory_reads", "other_reads", "total_seconds", "writes")

    def __init__(self) -> None:
        self.memory_reads = 0  # one counter per path: a memory hit touches only its own
        self.other_reads = 0
        self.writes = 0
        self.total_seconds = 0.0
        self.max_seconds = 0.0
        self.last = 0.0  # perf_counter() of the last access

    @property
    def reads(self) -> int:
        return self.memory_reads + self.other_reads

    def as_dict(self) -> dict[str, Any]:
        reads = self.reads
        operations = reads + self.writes
        last_access = time.time() - (time.perf_counter() - self.last)
        return {
            "reads": reads,
            "writes": self.writes,
            "cache": {
                "memory_hits": self.memory_reads,
                "memory_misses": self.other_reads,
                "hit_ratio": round(self.memory_reads / reads, 4) if reads else None,
            },
            "avg_ms": round(self.total_seconds * 1000 / operations, 3) if operations else None,
            "max_ms": round(self.max_seconds * 1000, 3),
            "last_access": round(last_access, 3),
        }


class AccessStats:
    """Bounded map of session id → SessionAccess; O(1) per recorded operation."""

    def __init__(self, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        # Public for the memory-hit recorder (`Instrumentation.hit_recorder`), which updates an
        # entry inline: one frame less on the hottest path.
        self.entries: dict[str, SessionAccess] = {}

    def memory_read(self, session_id: str, seconds: float, at: float) -> None:
        """A read the memory tier answered (the hottest one, a decoded hit, is recorded inline by
        `Instrumentation.hit_recorder`)."""
        access = self.entries.get(session_id) or self.track(session_id)
        access.memory_reads += 1
        access.total_seconds += seconds
        if seconds > access.max_seconds:
            access.max_seconds = seconds
        access.last = at

    def other_read(self, session_id: str, seconds: float, at: float) -> None:
        """A read that needed Redis (or decoding what memory held)."""
        access = self.entries.get(session_id) or self.track(session_id)
        access.other_reads += 1
        self._timed(access, seconds, at)

    def write(self, session_id: str, seconds: float, at: float) -> None:
        access = self.entries.get(session_id) or self.track(session_id)
        access.writes += 1
        self._timed(access, seconds, at)

    def forget(self, session_id: str) -> None:
        self.entries.pop(session_id, None)

    def view(self, session_id: str) -> dict[str, Any] | None:
        access = self.entries.get(session_id)
        return access.as_dict() if access is not None else None

    def __len__(self) -> int:
        return len(self.entries)

    def track(self, session_id: str) -> SessionAccess:
        """A new entry for `session_id` (the oldest entries are forgotten when the map is full)."""
        if len(self.entries) >= self.max_sessions:
            self._forget_oldest()
        access = self.entries[session_id] = SessionAccess()
        untrack(access)  # numbers only: full collections need not walk it (sessions.acyclic)
        return access

    def _forget_oldest(self) -> None:
        """Forget the oldest sixteenth of the map (dicts keep insertion order). One at a time
        cost 6.5 µs per new session at 10,000 tracked (measured): finding a dict's first key
        walks past every slot deleted before it since the dict last compacted."""
        entries = self.entries
        for session_id in list(islice(entries, max(1, self.max_sessions // 16))):
            del entries[session_id]

    @staticmethod
    def _timed(access: SessionAccess, seconds: float, at: float) -> None:
        access.total_seconds += seconds
        if seconds > access.max_seconds:
            access.max_seconds = seconds
        access.last = at
