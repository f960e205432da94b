"""The durable outage journal: writes made while Redis cannot take them, safe on local disk.

A drop-in for `ReplayJournal` (latest write per key, `get`/`peek`/`discard`, `replayed`) with
these differences, which make a 2xx for a write mean the write survives a crash of this process:

- `await record(item)` returns only once the record is on disk (written and fdatasync'ed).
  Concurrent writers share one fsync (group commit): a single writer task takes every record
  queued meanwhile, writes them at once and syncs once, in a worker thread.
- A journal that cannot take the write refuses it before it is acknowledged: `JournalFull` at its
  bound (entries or bytes), `JournalUnwritable` when the disk refuses (full, failing, read-only).
  Both are 503 + Retry-After; `dropped` stays 0. Every write tries the disk again, so the journal
  takes writes as soon as space is back; while it cannot, a probe every `retry_after` seconds
  (free space, and a write of the file's own first bytes) clears `condition()` once it could.
- `DurableJournal.open(directory)` locks the directory (flock: two processes never share one)
  and loads what previous processes left, read-only: start-up needs no free space.
- Compaction drops superseded and replayed records, once the journal empties or its file holds
  more than twice its live bytes (+4 MiB), and to absorb set-aside files.

This module is the journal's interface: opening (lock, load), the bounds, the ReplayJournal
calls, closing. It owns, and only it calls: `journal_writer.JournalWriter` (the task that appends,
compacts and probes), `journal_log.JournalLog` (what is on disk, and what a crash at each step
leaves there; blocking), `journal_index.JournalIndex` (the durable entries in memory),
`journal_pending.PendingRecords` (records waiting for their fsync) and
`journal_writability.JournalWritability` (whether the disk takes appends, who hears of it).
None of them calls back into this module.

    journal = DurableJournal.open("/var/lib/exporter/journal", max_entries=100_000)
    await journal.record(ReplayItem(key, version, expires_at, value))  # durable on return
    batch = journal.peek(500); ...; journal.discard(batch)
    await journal.close()
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from exporter.core.errors import JournalFull, StoreUnavailable
from exporter.store import journal_files as files
from exporter.store.contract import ReplayItem
from exporter.store.journal import JournalCondition
from exporter.store.journal_format import encode_record
from exporter.store.journal_index import JournalIndex
from exporter.store.journal_log import JournalLog
from exporter.store.journal_pending import PendingRecords
from exporter.store.journal_writability import (
    FAILURE_REASONS,
    ChangeListener,
    JournalChange,
    JournalWritability,
    failure_reason,
)
from exporter.store.journal_writer import JournalWriter

# Imported from here by the journal's users (reporting, tests): the journal's public names.
__all__ = [
    "DEFAULT_MAX_BYTES",
    "FAILURE_REASONS",
    "LOG_NAME",
    "ChangeListener",
    "DurableJournal",
    "JournalChange",
    "JournalClosed",
    "failure_reason",
]

log = logging.getLogger(__name__)

LOG_NAME = files.LOG_NAME
DEFAULT_MAX_BYTES = 256 << 20


class JournalClosed(StoreUnavailable):
    code = "store_busy"


class DurableJournal:
    """Latest write per key, bounded, on disk before acknowledged. Not thread-safe: one loop."""

    durable = True

    def __init__(
        self,
        directory: Path,
        lock_fd: int,
        *,
        max_entries: int,
        max_bytes: int,
        retry_after: float,
        fsync: bool,
    ) -> None:
        self.directory = directory
        self.path = directory / LOG_NAME
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.retry_after = retry_after
        self.fsync = fsync
        self.dropped = 0  # never moves: kept for StoreStatus compatibility
        self.replayed = 0
        self.loaded = 0
        self.disk = JournalLog(directory, fsync=fsync)
        self.writability = JournalWritability(self.path, retry_after)
        self._index = JournalIndex()
        self._pending = PendingRecords()
        self._writer = JournalWriter(
            self.disk, self._index, self._pending, self.writability, retry_after=retry_after
        )
        self._lock_fd = lock_fd

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        max_entries: int = 100_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        retry_after: float = 1.0,
        fsync: bool = True,
    ) -> DurableJournal:
        """Lock `directory` (created if missing) and load its journal. Blocking: call at start-up.

        Works on a full or read-only disk (the journal then refuses writes until the disk takes
        them). Raises `JournalLocked` if another process (or another open journal) holds the
        directory, OSError if a journal file cannot be read."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = files.lock(path)
        try:
            journal = cls(
                path,
                lock_fd,
                max_entries=max_entries,
                max_bytes=max_bytes,
                retry_after=retry_after,
                fsync=fsync,
            )
            journal._load()
        except BaseException:
            os.close(lock_fd)
            raise
        return journal

    def _load(self) -> None:
        """Read every journal file, then get ready to append."""
        self.disk.load(self._index.apply)
        self.loaded = len(self._index)
        self._log_load()
        self._try_prepare()

    def _log_load(self) -> None:
        if self.corrupt_records:
            log.error(
                "journal %s: %d damaged region(s), %d bytes, cannot be replayed (writes lost); "
                "%d intact entries loaded for replay, the damaged file is kept",
                self.path,
                self.corrupt_records,
                self.corrupt_bytes,
                self.loaded,
            )
        elif self.loaded:
            log.info("journal %s: %d entries to replay", self.path, self.loaded)
        if self.torn_bytes:
            log.warning(
                "journal %s: an unfinished write (%d bytes, never acknowledged) is cut off",
                self.path,
                self.torn_bytes,
            )

    def _try_prepare(self) -> None:
        """Get the live file ready for appends now, and see that the disk has room: if not, the
        journal starts unwritable (every write still tries, and the writer's probe)."""
        try:
            self.disk.check_ready()
        except OSError as exc:
            self.writability.still_failing(exc)
            log.error(
                "journal %s: cannot take writes (%s): writes during a Redis outage are refused"
                " until it can",
                self.path,
                self.write_error,
            )
            self._writer.kick()

    # -- what the disk holds (read at scrape time and by tests) --------------------------------

    @property
    def bytes(self) -> int:
        """Live bytes: the encoded size of the latest record of each key."""
        return self._index.bytes

    @property
    def write_error(self) -> str | None:
        """Why the disk refuses appends (None while it takes them)."""
        return self.writability.error

    @property
    def write_failures(self) -> dict[str, int]:
        """Refused records by failure reason (`FAILURE_REASONS` values, or "other")."""
        return self.writability.failures

    @property
    def syncs(self) -> int:
        return self.disk.syncs

    @property
    def corrupt_records(self) -> int:
        return self.disk.corrupt_records

    @property
    def corrupt_bytes(self) -> int:
        return self.disk.corrupt_bytes

    @property
    def torn_bytes(self) -> int:
        return self.disk.torn_bytes

    # -- the ReplayJournal interface -----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index)

    def __bool__(self) -> bool:
        return bool(self._index)

    def get(self, key: str) -> ReplayItem | None:
        """The durable entry for `key` (records still awaiting their fsync are not visible)."""
        return self._index.get(key)

    def peek(self, limit: int) -> list[ReplayItem]:
        """The oldest `limit` entries, left in place until `discard` confirms them."""
        return self._index.peek(limit)

    def discard(self, items: list[ReplayItem]) -> None:
        """Remove replayed entries, unless a newer write for the same key arrived meanwhile."""
        self._index.discard(items)
        self.replayed += len(items)
        if self._writer.wants_compaction():
            self._writer.kick()

    def clear(self) -> None:
        """Forget every entry (on disk too, at the next compaction)."""
        self._index.clear()
        self._writer.kick()

    def condition(self) -> JournalCondition:
        """Whether the disk takes appends, and how many damaged files are set aside (a damaged
        live file that could not be set aside yet counts too)."""
        return JournalCondition(self.write_error, self.disk.damaged_files())

    def listen(self, listener: ChangeListener) -> None:
        """Call `listener(change)` for every refused append and when appends work again."""
        self.writability.listen(listener)

    async def record(self, item: ReplayItem) -> None:
        """Journal `item`; return once it is on disk. Raises `JournalFull` (nothing written) if
        the journal holds `max_entries` keys or `max_bytes`, or `JournalUnwritable` if the disk
        refused it: in both cases the write must not be acknowledged."""
        if self._writer.closing:
            raise JournalClosed("the journal is closing", self.retry_after)
        data = encode_record(item)
        self._check_room(item.key, len(data))
        future = self._pending.add(item, data, self._index)
        self._writer.kick()
        # A caller cancelled mid-wait cancels only its future: the record stays queued and may
        # still land, unacknowledged, which a retry makes harmless (versions).
        await future

    def has_room(self, key: str, size: int = 0) -> bool:
        """Whether a record of `size` bytes for `key` would be accepted now."""
        queued = self._pending
        adds_key = key not in self._index and key not in queued.new_keys
        entries = len(self._index) + len(queued.new_keys) + adds_key
        return entries <= self.max_entries and self.bytes + queued.bytes + size <= self.max_bytes

    def _check_room(self, key: str, size: int) -> None:
        if not self.has_room(key, size):
            raise JournalFull(
                f"outage journal full ({len(self._index)} of {self.max_entries} entries, "
                f"{self.bytes} of {self.max_bytes} bytes): retry once Redis is back",
                self.retry_after,
            )

    # -- lifecycle -----------------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every record queued so far is durable (or failed)."""
        waiting = self._pending.waiting()
        if waiting:
            await asyncio.gather(*(asyncio.shield(f) for f in waiting), return_exceptions=True)

    async def compact(self) -> None:
        """Rewrite the file to hold only the live entries (empty after a full replay)."""
        await self.flush()
        await self._writer.compact_now()

    async def close(self) -> None:
        """Flush queued records, stop the writer and release the directory lock."""
        self._writer.closing = True
        await self.flush()
        await self._writer.stop()
        # One last try, whatever failed before: the next start reads less.
        if self.disk.untidy(self.bytes):
            await self._writer.compact_now()
        self._release()

    def _release(self) -> None:
        self.disk.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = -1

    async def __aenter__(self) -> DurableJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
