"""The durable outage journal, on real files: crash safety, damage detection, locking, refusal;
and on a real full (or read-only) disk: a size-capped tmpfs (tests/support/full_disk.py)."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter.core.errors import JournalFull, JournalLocked, JournalUnwritable, StoreUnavailable
from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.durable_journal import LOG_NAME, DurableJournal, JournalChange
from exporter.store.journal import JournalCondition
from exporter.store.journal_format import FILE_MAGIC, decode_records, encode_record
from tests.support.full_disk import small_disk
from tests.support.sessions import wait_for

ROOT = Path(__file__).resolve().parents[3]

# A child that journals writes from 16 concurrent writers and prints each key once acknowledged.
WRITER = """
import asyncio, sys
from exporter.store.durable_journal import DurableJournal
from exporter.store.contract import ReplayItem
from exporter.store.contract import StoredValue

async def main():
    journal = DurableJournal.open(sys.argv[1], max_entries=10**6)
    async def writer(w):
        for n in range(10**6):
            key = f"s:{w}-{n}"
            await journal.record(ReplayItem(key, n + 1, 9e9, StoredValue(b"x" * 100, n + 1, 9e9)))
            sys.stdout.write(key + "\\n")
            sys.stdout.flush()
    await asyncio.gather(*(writer(w) for w in range(16)))

asyncio.run(main())
"""

HOLDER = """
import sys
from exporter.store.durable_journal import DurableJournal
journal = DurableJournal.open(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
"""


def put(key: str, version: int, payload: bytes = b"v") -> ReplayItem:
    return ReplayItem(key, version, 9e9, StoredValue(payload + b"%d" % version, version, 9e9))


def delete(key: str, version: int) -> ReplayItem:
    return ReplayItem(key, version, 1234.5, None)


def child(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_lines_until(proc: subprocess.Popen[str], count: int, deadline: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    while len(lines) < count:
        assert time.monotonic() < deadline, f"only {len(lines)} lines before the deadline"
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            assert line, "child exited early"
            lines.append(line.strip())
    return lines


async def test_records_survive_reopening_with_latest_write_per_key(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path, max_entries=10)
    await journal.record(put("a", 1))
    await journal.record(put("b", 2))
    await journal.record(put("a", 3))
    await journal.record(delete("b", 4))
    assert len(journal) == 2
    await journal.close()

    reopened = DurableJournal.open(tmp_path, max_entries=10)
    assert reopened.loaded == 2 and reopened.corrupt_records == 0
    assert reopened.get("a") == put("a", 3)
    assert reopened.get("b") == delete("b", 4)
    assert [item.key for item in reopened.peek(10)] == ["a", "b"]  # in order of last write
    await reopened.close()


async def test_acknowledged_records_survive_sigkill(tmp_path: Path) -> None:
    proc = child(WRITER, str(tmp_path))
    try:
        acked = read_lines_until(proc, 2000, time.monotonic() + 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
    acked += [line for line in out.splitlines() if line]
    journal = DurableJournal.open(tmp_path, max_entries=10**6)
    missing = [key for key in acked if journal.get(key) is None]
    assert missing == []
    assert journal.loaded >= len(acked)
    await journal.close()


async def test_concurrent_records_share_fsyncs(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path, max_entries=10_000)
    await asyncio.gather(*(journal.record(put(f"k{n}", n)) for n in range(500)))
    assert len(journal) == 500
    assert journal.syncs < 500  # group commit: many records per fsync
    await journal.close()


async def test_a_torn_tail_is_cut_off_and_appends_follow_the_last_intact_record(
    tmp_path: Path,
) -> None:
    journal = DurableJournal.open(tmp_path)
    for n in range(5):
        await journal.record(put(f"k{n}", n + 1, b"p" * 50))
    await journal.close()
    path = tmp_path / LOG_NAME
    data = path.read_bytes()
    path.write_bytes(data[:-20])  # a torn last write: never acknowledged, not damage

    reopened = DurableJournal.open(tmp_path)
    assert (reopened.corrupt_records, reopened.torn_bytes) == (
        0,
        len(encode_record(put("k4", 5, b"p" * 50))) - 20,
    )
    assert [item.key for item in reopened.peek(10)] == ["k0", "k1", "k2", "k3"]
    assert path.stat().st_size == len(data) - len(encode_record(put("k4", 5, b"p" * 50)))
    await reopened.record(put("after", 9))
    reopened._release()  # as if killed: no compaction

    again = DurableJournal.open(tmp_path)
    assert (again.corrupt_records, again.torn_bytes) == (0, 0)
    assert [item.key for item in again.peek(10)] == ["k0", "k1", "k2", "k3", "after"]
    assert not list(tmp_path.glob(LOG_NAME + ".corrupt-*")) and again.condition().corrupt_files == 0
    await again.close()


async def test_a_flipped_byte_skips_only_the_damaged_record(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path)
    for n in range(3):
        await journal.record(put(f"k{n}", n + 1, b"p" * 50))
    await journal.close()
    path = tmp_path / LOG_NAME
    data = bytearray(path.read_bytes())
    middle = len(FILE_MAGIC) + len(encode_record(put("k0", 1, b"p" * 50))) + 30
    data[middle] ^= 0x40  # inside k1's payload
    path.write_bytes(bytes(data))

    reopened = DurableJournal.open(tmp_path)
    assert reopened.corrupt_records == 1 and reopened.corrupt_bytes > 0
    assert [item.key for item in reopened.peek(10)] == ["k0", "k2"]
    kept = tmp_path / (LOG_NAME + ".corrupt-1")
    assert kept.read_bytes() == bytes(data), "the damaged file is kept as it was"
    assert reopened.condition().corrupt_files == 1
    await reopened.close()  # the live file now holds k0 and k2: the set-aside one is absorbed

    again = DurableJournal.open(tmp_path)
    assert again.corrupt_records == 0 and [item.key for item in again.peek(10)] == ["k0", "k2"]
    assert not kept.exists() and kept.with_name(kept.name + ".replayed").exists()
    assert again.condition().corrupt_files == 1  # until an operator removes it
    await again.close()


def test_decoding_garbage_finds_no_records() -> None:
    decoded = decode_records(os.urandom(4096))
    assert decoded.items == [] and decoded.corrupt_regions == 1


async def test_a_failed_disk_write_is_not_acknowledged(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path)
    await journal.record(put("a", 1))
    os.close(journal.disk.fd)  # the next append fails (EBADF), as a disk error would
    with pytest.raises(StoreUnavailable, match="journal write failed") as refused:
        await journal.record(put("b", 2))
    assert refused.value.code == "store_busy" and refused.value.retry_after > 0
    assert journal.get("b") is None and len(journal) == 1
    assert journal.write_failures == {"other": 1}
    journal.disk.fd = -1
    journal._release()


async def test_a_full_journal_refuses_instead_of_dropping(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path, max_entries=2)
    await journal.record(put("a", 1))
    await journal.record(put("b", 2))
    with pytest.raises(JournalFull) as raised:
        await journal.record(put("c", 3))
    assert raised.value.code == "store_busy" and raised.value.retry_after > 0
    await journal.record(put("a", 4))  # replacing a held key needs no room
    assert [item.version for item in journal.peek(10)] == [2, 4]
    assert journal.dropped == 0
    await journal.close()


async def test_the_byte_bound_refuses_too(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path, max_entries=100, max_bytes=500)
    await journal.record(put("a", 1, b"x" * 200))
    with pytest.raises(JournalFull):
        await journal.record(put("b", 2, b"x" * 400))
    assert len(journal) == 1
    await journal.close()


async def test_concurrent_records_beyond_the_bound_are_refused(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path, max_entries=10)
    results = await asyncio.gather(
        *(journal.record(put(f"k{n}", n)) for n in range(25)), return_exceptions=True
    )
    accepted = [r for r in results if r is None]
    assert len(accepted) == 10 and len(journal) == 10
    assert all(isinstance(r, JournalFull) for r in results if r is not None)
    await journal.close()


async def test_discard_keeps_entries_superseded_during_the_replay(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path)
    await journal.record(put("a", 1))
    await journal.record(put("b", 2))
    batch = journal.peek(10)
    await journal.record(put("a", 3))  # written while the batch was in flight
    journal.discard(batch)
    assert [item.version for item in journal.peek(10)] == [3]
    assert journal.replayed == 2
    await journal.close()
    assert [item.version for item in DurableJournal.open(tmp_path).peek(10)] == [3]


async def test_a_full_replay_truncates_the_file(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path)
    for n in range(50):
        await journal.record(put(f"k{n}", n))
    journal.discard(journal.peek(100))
    await journal.compact()
    assert (tmp_path / LOG_NAME).read_bytes() == FILE_MAGIC
    await journal.record(put("after", 1))  # still appends after the rewrite
    await journal.close()
    reopened = DurableJournal.open(tmp_path)
    assert [item.key for item in reopened.peek(10)] == ["after"]
    await reopened.close()


async def test_superseded_records_are_compacted_away(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path)
    for n in range(200):
        await journal.record(put("hot", n, b"x" * 100))
    await journal.compact()
    size = (tmp_path / LOG_NAME).stat().st_size
    assert size == len(FILE_MAGIC) + len(encode_record(put("hot", 199, b"x" * 100)))
    await journal.close()


async def test_a_journal_dir_cannot_be_opened_twice_in_one_process(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path)
    with pytest.raises(JournalLocked, match="in use by another process"):
        DurableJournal.open(tmp_path)
    await journal.close()
    await DurableJournal.open(tmp_path).close()  # released on close


def test_a_journal_dir_cannot_be_shared_by_two_processes(tmp_path: Path) -> None:
    proc = child(HOLDER, str(tmp_path))
    try:
        assert read_lines_until(proc, 1, time.monotonic() + 30) == ["locked"]
        with pytest.raises(JournalLocked, match=f"pid {proc.pid}"):
            DurableJournal.open(tmp_path)
    finally:
        proc.communicate("")
    DurableJournal.open(tmp_path)._release()  # free again once the holder exited


# -- on a real full or read-only disk -----------------------------------------------------------

DISK = 64 * 1024  # 16 pages of tmpfs: the lock file takes one, the journal the rest


async def test_a_write_torn_by_a_full_disk_is_cut_off_and_costs_no_intact_entry() -> None:
    with small_disk(DISK) as disk:
        directory = disk.path / "journal"
        journal = DurableJournal.open(directory, retry_after=0.05)
        changes: list[JournalChange] = []
        journal.listen(changes.append)
        acked: dict[str, ReplayItem] = {}
        refused: list[JournalUnwritable] = []

        async def writer(w: int) -> None:  # concurrent: the disk fills in the middle of a batch
            for n in range(1000):
                item = put(f"k{w}-{n}", n + 1, b"x" * 300)
                try:
                    await journal.record(item)
                except JournalUnwritable as exc:
                    refused.append(exc)
                    return
                acked[item.key] = item

        await asyncio.gather(*(writer(w) for w in range(8)))
        assert refused and {(exc.code, exc.retry_after) for exc in refused} == {
            ("store_busy", 0.05)
        }
        assert journal.condition().write_error == os.strerror(28)  # ENOSPC
        assert changes[0].kind == "unwritable" and changes[0].reason == "no_space"
        assert journal.write_failures["no_space"] >= len(refused)
        # Nothing of a refused batch stays: the file ends with the last acknowledged record.
        records = sum(len(encode_record(item)) for item in acked.values())
        assert (directory / LOG_NAME).stat().st_size == len(FILE_MAGIC) + records

        disk.free()
        later = [put(f"later{n}", 1) for n in range(20)]
        for item in later:  # the next write tries the disk again: accepted
            await journal.record(item)
        assert journal.condition().writable and changes[-1].kind == "writable"
        journal._release()  # killed: no flush, no compaction

        reopened = DurableJournal.open(directory)
        assert (reopened.corrupt_records, reopened.torn_bytes) == (0, 0)
        assert {item.key: item for item in reopened.peek(10_000)} == {
            **acked,
            **{item.key: item for item in later},
        }
        await reopened.close()


async def test_a_damaged_journal_opens_read_only_on_a_full_disk_and_loses_no_intact_entry() -> None:
    with small_disk(DISK) as disk:
        directory = disk.path / "journal"
        journal = DurableJournal.open(directory)
        items = [put(f"k{n}", n + 1, b"p" * 50) for n in range(5)]
        for item in items:
            await journal.record(item)
        journal._release()
        path = directory / LOG_NAME
        data = bytearray(path.read_bytes())
        data[len(FILE_MAGIC) + len(encode_record(items[0])) + 30] ^= 0x40  # inside k1's payload
        path.write_bytes(bytes(data) + encode_record(put("torn", 9))[:25])  # and a torn tail
        disk.fill()

        full = DurableJournal.open(directory)  # no rewrite needed to start
        intact = ["k0", "k2", "k3", "k4"]
        assert [item.key for item in full.peek(10)] == intact
        assert (full.corrupt_records, full.condition().corrupt_files) == (1, 1)
        with pytest.raises(JournalUnwritable):
            await full.record(put("refused", 1))
        full._release()  # killed again, the disk still full

        disk.free()
        freed = DurableJournal.open(directory)  # the set-aside entries are still there
        assert [item.key for item in freed.peek(10)] == intact
        await freed.record(put("new", 1))
        freed.discard(freed.peek(10)[:-1])  # replayed, all but the new one
        await freed.compact()
        assert sorted(p.name for p in directory.glob(LOG_NAME + "*")) == [
            LOG_NAME,
            LOG_NAME + ".corrupt-1.replayed",
        ]
        await freed.close()

        final = DurableJournal.open(directory)
        assert [item.key for item in final.peek(10)] == ["new"] and final.corrupt_records == 0
        assert final.condition().corrupt_files == 1
        await final.close()


async def test_a_journal_set_aside_and_never_replayed_is_replayed(tmp_path: Path) -> None:
    """What an earlier version left when its rewrite failed: the damaged file, no journal.log."""
    items = [put(f"k{n}", n + 1) for n in range(3)]
    records = [encode_record(item) for item in items]
    damaged = FILE_MAGIC + records[0] + b"\x00" * 40 + records[1] + records[2]
    (tmp_path / (LOG_NAME + ".corrupt-1733490000000000000")).write_bytes(damaged)

    journal = DurableJournal.open(tmp_path)
    assert journal.peek(10) == items and journal.corrupt_records == 1
    journal.discard(journal.peek(10))
    await journal.close()
    assert [p.name for p in tmp_path.glob(LOG_NAME + ".corrupt-*")] == [
        LOG_NAME + ".corrupt-1733490000000000000.replayed"
    ]
    assert len(DurableJournal.open(tmp_path)) == 0


async def test_a_read_only_disk_refuses_writes_until_it_takes_them_again() -> None:
    with small_disk(DISK) as disk:
        directory = disk.path / "journal"
        first = DurableJournal.open(directory)
        await first.record(put("a", 1))
        await first.record(put("x", 1))
        first._release()
        path = directory / LOG_NAME
        path.write_bytes(path.read_bytes()[:-1] + b"!")  # x damaged: the file must be set aside
        disk.read_only(True)

        journal = DurableJournal.open(directory, retry_after=0.05)
        assert journal.get("a") == put("a", 1) and journal.get("x") is None
        assert journal.condition() == JournalCondition(os.strerror(30), 1)  # EROFS; not renamed
        with pytest.raises(JournalUnwritable) as refused:
            await journal.record(put("b", 2))
        assert refused.value.code == "store_busy" and journal.write_failures == {"read_only": 1}

        disk.read_only(False)
        await wait_for(lambda: journal.condition().writable, 10)  # the probe, with no write
        assert (directory / (LOG_NAME + ".corrupt-1")).exists()  # set aside by the probe
        await journal.record(put("b", 3))
        await journal.close()
        assert [item.key for item in DurableJournal.open(directory).peek(10)] == ["a", "b"]


async def test_compaction_waits_for_room_and_never_leaves_a_temporary_file() -> None:
    with small_disk(DISK) as disk:
        directory = disk.path / "journal"
        journal = DurableJournal.open(directory)
        for n in range(20):
            await journal.record(put("hot", n, b"x" * 500))
        size = (directory / LOG_NAME).stat().st_size
        disk.fill()
        await journal.compact()  # no room for the rewrite: postponed
        assert sorted(p.name for p in directory.iterdir()) == ["LOCK", LOG_NAME]
        assert (directory / LOG_NAME).stat().st_size == size
        disk.free()
        await journal.compact()
        hot = len(FILE_MAGIC) + len(encode_record(put("hot", 19, b"x" * 500)))
        assert (directory / LOG_NAME).stat().st_size == hot
        await journal.close()
