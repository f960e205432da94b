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

Each step, and what a crash (or a failed write) there leaves on disk (files: `journal_files`):

- *Append*: the batch is written at the end of the last good record (`pwrite`, no O_APPEND),
  then fdatasync'ed, then acknowledged. Killed before the sync returns: whole records never
  acknowledged (replayed like the others: harmless, a retry would write them too) and a torn
  tail (a prefix of a record), cut off at the next start. A failed write or sync: the file is
  truncated back to the last good record at once; if even that fails, every later append first
  retries the truncation and is refused while it fails. No append ever follows a torn one.
- *Damage* (a flipped byte, a lost block: per-record CRC-32): found at start-up. Every intact
  record is loaded, those after a damaged region too (a sync marker and the CRC find them), and
  the file is set aside as `journal.log.corrupt-<n>` (a rename: no space needed); a fresh live
  file takes the appends. Until the live journal has absorbed its records, the set-aside file is
  loaded again at every start; then it is renamed `...replayed` and kept for inspection. The
  damage is counted (`corrupt_records`, `corrupt_bytes`, `condition().corrupt_files`).
- *Compaction* drops superseded and replayed records, once the journal empties or its file holds
  more than twice its live bytes (+4 MiB), and to absorb set-aside files. An empty journal's file
  is truncated in place (no space needed); otherwise the live entries are rewritten to a temporary
  file (fsync, rename, directory fsync), only when the filesystem shows room for it, so it never
  takes the space appends need. A failed rewrite removes its temporary file; the old file is
  intact. A crash between a replay and the compaction replays those entries again at the next
  start, which is harmless: replay is version-checked in Redis.

    journal = DurableJournal.open("/var/lib/exporter/journal", max_entries=100_000)
    await journal.record(ReplayItem(key, version, expires_at, value))  # durable on return
    batch = journal.peek(500); ...; journal.discard(batch)
    await journal.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.core.errors import JournalFull, JournalUnwritable, StoreUnavailable
from exporter.store import journal_files as files
from exporter.store.contract import ReplayItem
from exporter.store.journal import JournalCondition
from exporter.store.journal_format import FILE_MAGIC, Decoded, decode_records, encode_record

log = logging.getLogger(__name__)

LOG_NAME = files.LOG_NAME
COMPACT_SLACK = 4 << 20  # superseded bytes tolerated before a rewrite (a hot key rewrites often)
COMPACT_RETRY = 10.0  # seconds between rewrites that could not be done (no room, a disk error)
PROBE_ROOM = 4096  # free space a probe wants before it says the journal takes writes again
DEFAULT_MAX_BYTES = 256 << 20

# Why the disk refused an append: the bounded `reason` of the failure metric.
FAILURE_REASONS = {
    errno.ENOSPC: "no_space",
    errno.EDQUOT: "no_space",
    errno.EFBIG: "no_space",
    errno.EROFS: "read_only",
    errno.EIO: "io_error",
}

_Pending = tuple[ReplayItem, bytes, "asyncio.Future[None]"]


@dataclass(frozen=True, slots=True)
class JournalChange:
    """What a listener hears: `unwritable` (the first refused append of a run), `refused` (the
    next ones), `writable` (the first append that works again). `writes`: how many were refused."""

    kind: str
    reason: str = ""  # a FAILURE_REASONS value (or "other")
    error: str = ""
    writes: int = 0


ChangeListener = Callable[[JournalChange], None]


class JournalClosed(StoreUnavailable):
    code = "store_busy"


def failure_reason(exc: OSError) -> str:
    """The bounded reason for a refused append: no_space, read_only, io_error or other."""
    return FAILURE_REASONS.get(exc.errno or 0, "other")


def describe(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


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
        self.corrupt_records = 0  # damaged regions found at start-up (records lost)
        self.corrupt_bytes = 0
        self.torn_bytes = 0  # an unfinished append cut off at start-up (never acknowledged)
        self.syncs = 0  # fsyncs done: records / syncs is the group-commit batch size
        self.write_error: str | None = (
            None  # why the disk refuses appends, None while it takes them
        )
        self.write_failures: dict[str, int] = {}  # refused batches by failure reason
        self._listeners: list[ChangeListener] = []
        self._lock_fd = lock_fd
        self._fd = -1
        self._end = 0  # where the next append goes: the end of the last good record
        self._tail_dirty = False  # bytes past _end that a failed truncation left
        self._live_damaged = False  # the live file holds damage: set it aside before appending
        self._corrupt_files: list[Path] = []  # set aside in the directory, absorbed or not
        self._unabsorbed: list[Path] = []  # set aside, records not in the live file yet
        self._compact_after = 0.0  # monotonic: none before (the last one failed); 0: none did
        self._probed_at = 0.0
        self._items: OrderedDict[str, ReplayItem] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.bytes = 0  # live bytes: the encoded size of the latest record of each key
        self._pending: list[_Pending] = []
        self._inflight: list[_Pending] = []  # the batch being written and synced
        self._pending_new: set[str] = set()  # queued keys not yet in _items
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._io = asyncio.Lock()  # one file operation at a time: an append or a rewrite

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
        """Read every journal file (set-aside ones first, in order), then get ready to append."""
        files.remove_stale_tmp(self.directory)
        self._corrupt_files = files.corrupt_files(self.directory)
        self._unabsorbed = files.unabsorbed(self._corrupt_files)
        for kept in self._unabsorbed:
            decoded = self._read(kept)
            log.warning(
                "journal %s: %d entries from %s, set aside as damaged, still to replay",
                self.path,
                len(decoded.items),
                kept.name,
            )
        live = self._read(self.path)
        self._end = live.intact_end
        self._live_damaged = live.corrupt_regions > 0
        self._tail_dirty = live.torn_tail > 0
        self.torn_bytes = live.torn_tail
        self.loaded = len(self._items)
        self._log_load()
        self._try_prepare()

    def _read(self, path: Path) -> Decoded:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        decoded = decode_records(data)
        for item, size in zip(decoded.items, decoded.sizes, strict=True):
            self._apply(item, size)
        self.corrupt_records += decoded.corrupt_regions
        self.corrupt_bytes += decoded.corrupt_bytes
        return decoded

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
            self._prepare()
            files.require_room(self.directory, PROBE_ROOM)
        except OSError as exc:
            self.write_error = describe(exc)
            log.error(
                "journal %s: cannot take writes (%s): writes during a Redis outage are refused"
                " until it can",
                self.path,
                self.write_error,
            )
            self._kick()

    # -- the ReplayJournal interface -----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def get(self, key: str) -> ReplayItem | None:
        """The durable entry for `key` (records still awaiting their fsync are not visible)."""
        return self._items.get(key)

    def peek(self, limit: int) -> list[ReplayItem]:
        """The oldest `limit` entries, left in place until `discard` confirms them."""
        return list(itertools.islice(self._items.values(), limit))

    def discard(self, items: list[ReplayItem]) -> None:
        """Remove replayed entries, unless a newer write for the same key arrived meanwhile."""
        for item in items:
            if self._items.get(item.key) is item:
                del self._items[item.key]
                self.bytes -= self._sizes.pop(item.key)
        self.replayed += len(items)
        if self._wants_compaction():
            self._kick()

    def clear(self) -> None:
        """Forget every entry (on disk too, at the next compaction)."""
        self._items.clear()
        self._sizes.clear()
        self.bytes = 0
        self._kick()

    def condition(self) -> JournalCondition:
        """Whether the disk takes appends, and how many damaged files are set aside (a damaged
        live file that could not be set aside yet counts too)."""
        damaged = len(self._corrupt_files) + self._live_damaged
        return JournalCondition(self.write_error, damaged)

    def listen(self, listener: ChangeListener) -> None:
        """Call `listener(change)` for every refused append and when appends work again."""
        self._listeners.append(listener)

    async def record(self, item: ReplayItem) -> None:
        """Journal `item`; return once it is on disk. Raises `JournalFull` (nothing written) if
        the journal holds `max_entries` keys or `max_bytes`, or `JournalUnwritable` if the disk
        refused it: in both cases the write must not be acknowledged."""
        if self._closing:
            raise JournalClosed("the journal is closing", self.retry_after)
        data = encode_record(item)
        self._check_room(item.key, len(data))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, data, future))
        self._pending_bytes += len(data)
        if item.key not in self._items:
            self._pending_new.add(item.key)
        self._kick()
        # A caller cancelled mid-wait cancels only its future: the record stays queued and may
        # still land, unacknowledged, which a retry makes harmless (versions).
        await future

    def has_room(self, key: str, size: int = 0) -> bool:
        """Whether a record of `size` bytes for `key` would be accepted now."""
        adds_key = key not in self._items and key not in self._pending_new
        entries = len(self._items) + len(self._pending_new) + adds_key
        return entries <= self.max_entries and self.bytes + self._pending_bytes + size <= (
            self.max_bytes
        )

    def _check_room(self, key: str, size: int) -> None:
        if not self.has_room(key, size):
            raise JournalFull(
                f"outage journal full ({len(self._items)} of {self.max_entries} entries, "
                f"{self.bytes} of {self.max_bytes} bytes): retry once Redis is back",
                self.retry_after,
            )

    # -- lifecycle -----------------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every record queued so far is durable (or failed)."""
        waiting = [future for _, _, future in self._inflight + self._pending]
        if waiting:
            await asyncio.gather(*(asyncio.shield(f) for f in waiting), return_exceptions=True)

    async def compact(self) -> None:
        """Rewrite the file to hold only the live entries (empty after a full replay)."""
        await self.flush()
        await self._compact_now()

    async def close(self) -> None:
        """Flush queued records, stop the writer and release the directory lock."""
        self._closing = True
        await self.flush()
        if self._writer is not None:
            self._wake.set()
            await self._writer
            self._writer = None
        # One last try, whatever failed before: the next start reads less.
        superseded = self._end > len(FILE_MAGIC) + self.bytes
        if superseded or self._unabsorbed or self._live_damaged:
            await self._compact_now()
        self._release()

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = -1

    async def __aenter__(self) -> DurableJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the writer ----------------------------------------------------------------------------

    def _kick(self) -> None:
        self._wake.set()
        if self._writer is None and not self._closing:
            with contextlib.suppress(RuntimeError):  # no running loop: the next record starts it
                self._writer = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._sleep()
            try:
                if self._pending:
                    await self._commit()
                elif self._wants_compaction():
                    await self._compact_now()
                elif self.write_error is not None:
                    await self._probe()
            except Exception:  # never leave writers waiting on a dead task
                log.exception("journal %s: writer failed", self.path)
                self._fail(self._pending, StoreUnavailable("outage journal failed"))
                self._pending = []
                self._requeue_accounting()
            if self._closing and not self._pending:
                return
            if self._pending:
                self._wake.set()

    async def _sleep(self) -> None:
        """Until woken; while the disk refuses appends, at most until the next probe is due."""
        if self.write_error is None or self._closing:
            await self._wake.wait()
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.retry_after):
                    await self._wake.wait()
        self._wake.clear()

    async def _commit(self) -> None:
        """Append every queued record with one write and one fsync; then acknowledge them."""
        batch, self._pending = self._pending, []
        self._inflight = batch
        try:
            await self._write_batch(batch)
        except Exception:
            self._fail(batch, StoreUnavailable("outage journal failed"))
            raise
        finally:
            self._inflight = []

    async def _write_batch(self, batch: list[_Pending]) -> None:
        async with self._io:
            try:
                await asyncio.to_thread(self._append, b"".join(data for _, data, _ in batch))
            except OSError as exc:
                self._requeue_accounting()
                self._fail(batch, self._refused(exc, len(batch)))
                return
            self._writable()
            for item, data, _ in batch:
                self._apply(item, len(data))
        self._requeue_accounting()
        for _, _, future in batch:
            if not future.done():
                future.set_result(None)
        if self._wants_compaction():
            self._wake.set()

    def _refused(self, exc: OSError, writes: int) -> JournalUnwritable:
        """Count a refused append; the first of a run is logged at error level."""
        reason, error = failure_reason(exc), describe(exc)
        self.write_failures[reason] = self.write_failures.get(reason, 0) + writes
        kind = "unwritable" if self.write_error is None else "refused"
        if kind == "unwritable":
            log.error(
                "journal %s: write failed (%s): refusing writes until it works", self.path, error
            )
        self.write_error = error
        self._tell(JournalChange(kind, reason, error, writes))
        return JournalUnwritable(
            f"outage journal write failed ({error}): retry once Redis is back", self.retry_after
        )

    def _writable(self) -> None:
        if self.write_error is not None:
            log.warning(
                "journal %s: takes writes again (it failed with: %s)", self.path, self.write_error
            )
            self.write_error = None
            self._tell(JournalChange("writable"))

    def _tell(self, change: JournalChange) -> None:
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:  # a reporting bug must not fail the write path
                log.exception("journal %s: a listener failed", self.path)

    async def _probe(self) -> None:
        """Whether the disk takes appends again (free space, a write that changes nothing)."""
        if time.monotonic() - self._probed_at < self.retry_after:
            return
        self._probed_at = time.monotonic()
        async with self._io:
            try:
                await asyncio.to_thread(self._probe_disk)
            except OSError as exc:
                self.write_error = describe(exc)
                return
            self._writable()

    async def _compact_now(self) -> None:
        async with self._io:
            try:
                await asyncio.to_thread(self._compact, list(self._items.values()))
            except OSError as exc:  # the old file is intact: compaction is only an optimisation
                # Logged once per run of failures: a full disk may last, the retries with it.
                level = logging.DEBUG if self._compact_after else logging.WARNING
                self._compact_after = time.monotonic() + COMPACT_RETRY
                log.log(level, "journal %s: compaction postponed (%s)", self.path, describe(exc))
            else:
                self._compact_after = 0.0

    def _fail(self, batch: list[_Pending], failure: StoreUnavailable) -> None:
        failure.retry_after = self.retry_after
        for _, _, future in batch:
            if not future.done():
                future.set_exception(failure)

    def _requeue_accounting(self) -> None:
        """Recount what is still queued (records that arrived during the last fsync)."""
        self._pending_bytes = sum(len(data) for _, data, _ in self._pending)
        self._pending_new = {
            item.key for item, _, _ in self._pending if item.key not in self._items
        }

    def _apply(self, item: ReplayItem, size: int) -> None:
        self._items.pop(item.key, None)
        self._items[item.key] = item
        self.bytes += size - self._sizes.get(item.key, 0)
        self._sizes[item.key] = size

    def _wants_compaction(self) -> bool:
        if time.monotonic() < self._compact_after:
            return False
        if not self._items:  # a truncation in place: needs no space
            return self._end > len(FILE_MAGIC) or bool(self._unabsorbed)
        superseded = self._end - len(FILE_MAGIC) - self.bytes
        return bool(self._unabsorbed) or superseded > self.bytes + COMPACT_SLACK

    # -- blocking file work (worker thread or start-up) ----------------------------------------

    def _prepare(self) -> None:
        """Make the live file ready for an append at `_end`: set a damaged one aside (a fresh
        file takes the appends), open it, cut what a failed append left past `_end`."""
        if self._live_damaged:
            self._set_aside()
        if self._fd < 0:
            self._fd = files.open_log(self.path, fsync=self.fsync)
        if self._tail_dirty:
            os.ftruncate(self._fd, self._end)
            self._tail_dirty = False

    def _set_aside(self) -> None:
        kept = files.set_aside_name(self.directory, self._corrupt_files)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        os.replace(self.path, kept)
        self._corrupt_files.append(kept)
        self._unabsorbed.append(kept)
        self._live_damaged = False
        self._tail_dirty = False
        self._end = 0
        log.warning("journal %s: the damaged file is set aside as %s", self.path, kept.name)
        # open_log creates the fresh file and syncs the directory: both renames are durable
        # before anything is acknowledged in the new file.

    def _append(self, data: bytes) -> None:
        """Write and sync `data` at `_end`; on any failure, nothing of it stays in the file."""
        try:
            self._prepare()
            if self._end == 0:
                data = FILE_MAGIC + data  # a fresh file: its first append carries the magic
            files.write_at(self._fd, data, self._end)
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError:
            self._cut_tail()
            raise
        self._end += len(data)
        self.syncs += 1

    def _cut_tail(self) -> None:
        """Truncate back to the last good record; if that fails too, the next append retries."""
        self._tail_dirty = True
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._end)
                self._tail_dirty = False

    def _probe_disk(self) -> None:
        self._prepare()
        files.require_room(self.directory, PROBE_ROOM)
        # The file's own first bytes, written again: the disk must take a write, and a crash
        # meanwhile leaves the file as it was. An empty file gets its magic.
        files.write_at(self._fd, FILE_MAGIC, 0)
        if self.fsync:
            os.fdatasync(self._fd)
        self._end = max(self._end, len(FILE_MAGIC))

    def _compact(self, items: list[ReplayItem]) -> None:
        """Drop superseded and replayed records, then mark set-aside files absorbed."""
        if self._live_damaged:
            self._set_aside()  # a rewrite must never replace the damaged file: it is evidence
        if items:
            self._rewrite(items)
        else:
            self._truncate_to_empty()
        if self._unabsorbed:
            files.mark_absorbed(self._unabsorbed)
            if self.fsync:
                files.sync_directory(self.directory)
            self._corrupt_files = files.corrupt_files(self.directory)
            self._unabsorbed = []

    def _truncate_to_empty(self) -> None:
        """Everything was replayed: cut the file back to its magic, in place (no space needed)."""
        self._prepare()
        self._end = min(self._end, len(FILE_MAGIC))
        os.ftruncate(self._fd, self._end)
        if self.fsync:
            os.fdatasync(self._fd)

    def _rewrite(self, items: list[ReplayItem]) -> None:
        """Replace the file by one holding `items`, atomically (temp file, fsync, rename)."""
        data = FILE_MAGIC + b"".join(encode_record(item) for item in items)
        # Room for the rewrite and as much again: appends meanwhile must not find the disk full.
        files.require_room(self.directory, 2 * len(data) + PROBE_ROOM)
        tmp = self.directory / files.TMP_NAME
        files.write_file(tmp, data, fsync=self.fsync)
        os.replace(tmp, self.path)
        if self.fsync:
            files.sync_directory(self.directory)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._end = len(data)
        self._tail_dirty = False
        self._fd = files.open_log(self.path, fsync=False)
