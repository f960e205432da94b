"""What the memory tier may answer, and the synchronous session read built on it."""

from __future__ import annotations

import time

from exporter.sessions.held_sessions import HeldSessions
from exporter.sessions.session import Session, session_key
from exporter.store.contract import StoredValue
from exporter.store.memory_reads import MemoryReads
from exporter.store.memory_store import MemoryStore


def stored(decoded: Session | None = None) -> StoredValue:
    return StoredValue(b"{}", 1, time.time() + 60, decoded)


def test_bypass_and_parked_keys_are_not_answered_from_memory() -> None:
    reads = MemoryReads(MemoryStore(10, 1 << 20))
    reads.memory.put("a", stored())
    reads.memory.put("b", stored())
    assert reads.get("a") is not None
    reads.parked["a"] = (stored(), 0, 3)  # our own write, invalidated, not yet confirmed
    assert reads.get("a") is None and reads.get("b") is not None
    reads.bypass = True  # coherence unknown: nothing from memory
    assert reads.get("b") is None
    reads.bypass = False
    del reads.parked["a"]
    assert reads.get("a") is not None


def test_held_sessions_answer_and_record_only_decoded_hits() -> None:
    reads = MemoryReads(MemoryStore(10, 1 << 20))
    hits: list[tuple[str, float]] = []
    held = HeldSessions(reads, lambda sid, started, now: hits.append((sid, now - started)))
    session = Session("abc", {"n": 1}, 0.0, time.time() + 60)
    assert held.get("abc") is None  # not held
    reads.memory.put(session_key("xyz"), stored())  # held, not decoded (a Redis read fills it)
    assert held.get("xyz") is None
    assert hits == []
    reads.memory.put(session_key("abc"), stored(session))
    assert held.get("abc") is session
    assert [sid for sid, _ in hits] == ["abc"] and hits[0][1] >= 0
