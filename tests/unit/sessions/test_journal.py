"""In-memory replay journal: one entry per key, bounded, refusing (never dropping) when full."""

from __future__ import annotations

import pytest

from exporter.core.errors import JournalFull
from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.journal import ReplayJournal


def put(key: str, version: int) -> ReplayItem:
    return ReplayItem(key, version, 9e9, StoredValue(b"v%d" % version, version, 9e9))


async def test_latest_write_per_key_supersedes_earlier_ones() -> None:
    journal = ReplayJournal(10)
    await journal.record(put("a", 1))
    await journal.record(put("a", 2))
    assert len(journal) == 1
    assert journal.get("a").version == 2  # type: ignore[union-attr]


async def test_a_full_journal_refuses_and_keeps_what_it_accepted() -> None:
    journal = ReplayJournal(2)
    await journal.record(put("a", 1))
    await journal.record(put("b", 2))
    with pytest.raises(JournalFull) as full:
        await journal.record(put("c", 3))
    assert full.value.code == "store_busy" and full.value.retry_after >= 1
    await journal.record(put("a", 4))  # a key it holds needs no room
    assert journal.dropped == 0
    assert [item.key for item in journal.peek(10)] == ["b", "a"]


async def test_discard_keeps_entries_superseded_during_the_replay() -> None:
    journal = ReplayJournal(10)
    await journal.record(put("a", 1))
    await journal.record(put("b", 2))
    batch = journal.peek(10)
    await journal.record(put("a", 3))  # written while the batch was in flight
    journal.discard(batch)
    assert [item.version for item in journal.peek(10)] == [3]
    assert journal.replayed == 2
