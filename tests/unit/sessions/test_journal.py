"""Replay journal: one entry per key, bounded, overflow counted."""

from __future__ import annotations

from exporter.sessions.journal import ReplayJournal
from exporter.sessions.redis_store import ReplayItem
from exporter.sessions.store import StoredValue


def put(key: str, version: int) -> ReplayItem:
    return ReplayItem(key, version, 9e9, StoredValue(b"v%d" % version, version, 9e9))


def test_latest_write_per_key_supersedes_earlier_ones() -> None:
    journal = ReplayJournal(10)
    journal.record(put("a", 1))
    journal.record(put("a", 2))
    assert len(journal) == 1
    assert journal.get("a").version == 2  # type: ignore[union-attr]


def test_overflow_drops_the_oldest_and_counts_it() -> None:
    journal = ReplayJournal(2)
    journal.record(put("a", 1))
    journal.record(put("b", 2))
    dropped = journal.record(put("c", 3))
    assert dropped is not None and dropped.key == "a"
    assert journal.dropped == 1
    assert [item.key for item in journal.peek(10)] == ["b", "c"]


def test_discard_keeps_entries_superseded_during_the_replay() -> None:
    journal = ReplayJournal(10)
    journal.record(put("a", 1))
    journal.record(put("b", 2))
    batch = journal.peek(10)
    journal.record(put("a", 3))  # written while the batch was in flight
    journal.discard(batch)
    assert [item.version for item in journal.peek(10)] == [3]
    assert journal.replayed == 2
