"""The durable journal's pure parts, driven directly (no disk): the index of durable entries, the
group-commit queue and its bound accounting, and the writability state with its listeners.
(The journal as a whole, on a real directory: `test_durable_journal.py`.)"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from exporter.core.errors import JournalUnwritable, StoreUnavailable
from exporter.store import journal_pending as pending
from exporter.store.contract import ReplayItem
from exporter.store.journal_index import JournalIndex
from exporter.store.journal_pending import PendingRecords
from exporter.store.journal_writability import JournalChange, JournalWritability

FAR = 9e9


def put(key: str, version: int) -> ReplayItem:
    return ReplayItem(key, version, FAR, None)


def test_the_index_keeps_the_latest_record_per_key_and_moves_it_last() -> None:
    index = JournalIndex()
    index.apply(put("a", 1), 40)
    index.apply(put("b", 1), 30)
    index.apply(put("a", 2), 45)
    assert [(item.key, item.version) for item in index.entries()] == [("b", 1), ("a", 2)]
    assert len(index) == 2 and index.bytes == 75


def test_discarding_a_replayed_entry_keeps_a_newer_write_of_its_key() -> None:
    index = JournalIndex()
    replayed = put("a", 1)
    index.apply(replayed, 40)
    index.apply(put("b", 1), 30)
    batch = index.peek(2)
    index.apply(put("a", 2), 41)  # arrives while the batch is replayed
    index.discard(batch)
    assert [(item.key, item.version) for item in index.entries()] == [("a", 2)]
    assert index.bytes == 41 and "b" not in index


async def test_queued_records_count_towards_the_bound_until_recounted() -> None:
    index = JournalIndex()
    index.apply(put("a", 1), 40)
    queue = PendingRecords()
    first = queue.add(put("a", 2), b"x" * 41, index)
    second = queue.add(put("b", 1), b"y" * 30, index)
    assert queue.bytes == 71 and queue.new_keys == {"b"}

    batch = queue.take()
    late = queue.add(put("c", 1), b"z" * 20, index)  # arrives during the fsync
    assert queue.waiting() == [first, second, late]
    for item, data, _ in batch:
        index.apply(item, len(data))
    queue.recount(index)
    queue.landed()
    pending.acknowledge(batch)
    assert first.done() and second.done() and not late.done()
    assert queue.bytes == 20 and queue.new_keys == {"c"} and queue.waiting() == [late]


async def test_a_failed_queue_refuses_every_waiting_record() -> None:
    queue = PendingRecords()
    futures = [queue.add(put(key, 1), b"x", JournalIndex()) for key in "ab"]
    queue.fail_queued(StoreUnavailable("outage journal failed"), JournalIndex())
    for future in futures:
        with pytest.raises(StoreUnavailable):
            await future
    assert not queue and queue.bytes == 0 and queue.new_keys == set()


def test_each_run_of_refusals_is_one_unwritable_then_refused_then_writable(
    tmp_path: Path,
) -> None:
    writability = JournalWritability(tmp_path / "journal.log", retry_after=2.0)
    heard: list[JournalChange] = []
    writability.listen(heard.append)
    full = OSError(errno.ENOSPC, "No space left on device")

    refusal = writability.refused(full, 3)
    writability.refused(full, 1)
    assert isinstance(refusal, JournalUnwritable) and refusal.retry_after == 2.0
    assert writability.error == "No space left on device"
    assert writability.failures == {"no_space": 4}

    writability.writable()
    writability.writable()  # already writable: nothing to tell
    assert [(change.kind, change.reason, change.writes) for change in heard] == [
        ("unwritable", "no_space", 3),
        ("refused", "no_space", 1),
        ("writable", "", 0),
    ]
    assert writability.error is None


def test_a_probe_that_still_fails_tells_nobody(tmp_path: Path) -> None:
    writability = JournalWritability(tmp_path / "journal.log", retry_after=1.0)
    heard: list[JournalChange] = []
    writability.listen(heard.append)
    writability.still_failing(OSError(errno.EROFS, "Read-only file system"))
    assert writability.error == "Read-only file system" and heard == []
    assert writability.failures == {}


def test_a_failing_listener_does_not_stop_the_others(tmp_path: Path) -> None:
    writability = JournalWritability(tmp_path / "journal.log", retry_after=1.0)
    heard: list[str] = []

    def broken(change: JournalChange) -> None:
        raise RuntimeError("a reporting bug")

    writability.listen(broken)
    writability.listen(lambda change: heard.append(change.kind))
    writability.refused(OSError(errno.EIO, "Input/output error"), 1)
    assert heard == ["unwritable"] and writability.failures == {"io_error": 1}
