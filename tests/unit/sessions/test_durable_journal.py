"""The durable outage journal, on real files: crash safety, damage detection, locking, refusal."""

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

from exporter.errors import JournalFull, JournalLocked, StoreUnavailable
from exporter.sessions.durable_journal import LOG_NAME, DurableJournal
from exporter.sessions.journal_format import FILE_MAGIC, decode_records, encode_record
from exporter.sessions.store import ReplayItem, StoredValue

ROOT = Path(__file__).resolve().parents[3]

# A child that journals writes from 16 concurrent writers and prints each key once acknowledged.
WRITER = """
import asyncio, sys
from exporter.sessions.durable_journal import DurableJournal
from exporter.sessions.store import ReplayItem
from exporter.sessions.store import StoredValue

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
from exporter.sessions.durable_journal import DurableJournal
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


async def test_a_truncated_tail_is_reported_and_not_replayed(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path)
    for n in range(5):
        await journal.record(put(f"k{n}", n + 1, b"p" * 50))
    await journal.close()
    path = tmp_path / LOG_NAME
    data = path.read_bytes()
    path.write_bytes(data[:-20])  # a torn last write

    reopened = DurableJournal.open(tmp_path)
    assert reopened.corrupt_records == 1
    assert [item.key for item in reopened.peek(10)] == ["k0", "k1", "k2", "k3"]
    assert list(tmp_path.glob(LOG_NAME + ".corrupt-*")), "the damaged file is kept aside"
    await reopened.close()
    assert DurableJournal.open(tmp_path).corrupt_records == 0  # rewritten clean


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
    await reopened.close()


def test_decoding_garbage_finds_no_records() -> None:
    decoded = decode_records(os.urandom(4096))
    assert decoded.items == [] and decoded.corrupt_regions == 1


async def test_a_failed_disk_write_is_not_acknowledged(tmp_path: Path) -> None:
    journal = DurableJournal.open(tmp_path)
    await journal.record(put("a", 1))
    os.close(journal._fd)  # the next append fails (EBADF), as a disk error would
    with pytest.raises(StoreUnavailable, match="journal write failed"):
        await journal.record(put("b", 2))
    assert journal.get("b") is None and len(journal) == 1
    journal._fd = -1
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
