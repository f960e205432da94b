"""The durable outage journal: writes made while Redis cannot take them, safe on local disk.

A drop-in for `ReplayJournal` (latest write per key, `get`/`peek`/`discard`, `replayed`) with
three differences that make a 2xx for a write mean the write survives a crash of this process:

- `await record(item)` returns only once the record is on disk (appended and fdatasync'ed).
  Concurrent writers share one fsync (group commit): a single writer task takes every record
  queued meanwhile, appends them with one write and syncs once, in a worker thread.
- A full journal (entries or bytes) refuses with `JournalFull` (503 + Retry-After) instead of
  dropping an entry it acknowledged; `dropped` stays 0.
- `DurableJournal.open(directory)` locks the directory (flock: two processes never share one)
  and loads what a previous process left, so it can be replayed once Redis answers. Damaged
  records (torn tail, flipped bytes: per-record CRC-32) are counted, logged, set aside in a
  `.corrupt-*` file and never replayed.

The file is append-only; superseded and replayed records are dropped by compaction (a rewrite of
the live entries to a temporary file, fsync, rename), which runs when the journal empties or the
file grows past twice its live bytes. A crash between a replay and the compaction replays those
entries again at the next start, which is harmless: replay is version-checked in Redis.

    journal = DurableJournal.open("/var/lib/exporter/journal", max_entries=100_000)
    await journal.record(ReplayItem(key, version, expires_at, value))  # durable on return
    batch = journal.peek(500); ...; journal.discard(batch)
    await journal.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path

from exporter.errors import JournalFull, JournalLocked, StoreUnavailable
from exporter.sessions.journal_format import FILE_MAGIC, decode_records, encode_record
from exporter.sessions.store import ReplayItem

log = logging.getLogger(__name__)

LOG_NAME = "journal.log"
LOCK_NAME = "LOCK"
COMPACT_SLACK = 4 << 20  # superseded bytes tolerated before a rewrite (a hot key rewrites often)
DEFAULT_MAX_BYTES = 256 << 20

_Pending = tuple[ReplayItem, bytes, "asyncio.Future[None]"]


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
        self.corrupt_records = 0
        self.corrupt_bytes = 0
        self.syncs = 0  # fsyncs done: records / syncs is the group-commit batch size
        self._lock_fd = lock_fd
        self._fd = -1
        self._file_bytes = 0
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

        Raises `JournalLocked` if another process (or another open journal) holds it."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock(path)
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
        data = self.path.read_bytes() if self.path.exists() else b""
        decoded = decode_records(data)
        for item, size in zip(decoded.items, decoded.sizes, strict=True):
            self._apply(item, size)
        self.loaded = len(self._items)
        self.corrupt_records = decoded.corrupt_regions
        self.corrupt_bytes = decoded.corrupt_bytes
        self._file_bytes = len(data)
        if decoded.corrupt_regions:
            kept = self._set_aside()
            log.warning(
                "journal %s: %d damaged record(s), %d bytes, not replayed (kept in %s); "
                "%d intact entries loaded",
                self.path,
                decoded.corrupt_regions,
                decoded.corrupt_bytes,
                kept.name,
                self.loaded,
            )
        elif self.loaded:
            log.info("journal %s: %d entries to replay", self.path, self.loaded)
        if decoded.corrupt_regions or not data.startswith(FILE_MAGIC) or self._wants_compaction():
            self._rewrite(list(self._items.values()))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def _set_aside(self) -> Path:
        """Keep the damaged file for inspection; the intact entries are rewritten fresh."""
        kept = self.path.with_name(f"{LOG_NAME}.corrupt-{time.time_ns()}")
        os.replace(self.path, kept)
        return kept

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

    async def record(self, item: ReplayItem) -> None:
        """Journal `item`; return once it is on disk. Raises `JournalFull` (nothing written) if
        the journal holds `max_entries` keys or `max_bytes`, or `StoreUnavailable` if the disk
        write failed: in both cases the write must not be acknowledged."""
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
        if self._file_bytes > len(FILE_MAGIC) + self.bytes:  # replayed or superseded records
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
            await self._wake.wait()
            self._wake.clear()
            try:
                if self._pending:
                    await self._commit()
                elif self._wants_compaction():
                    await self._compact_now()
            except Exception:  # never leave writers waiting on a dead task
                log.exception("journal %s: writer failed", self.path)
                self._fail(self._pending, StoreUnavailable("outage journal failed"))
                self._pending = []
                self._requeue_accounting()
            if self._closing and not self._pending:
                return
            if self._pending:
                self._wake.set()

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
                log.error("journal %s: write failed: %s", self.path, exc)
                self._requeue_accounting()
                self._fail(batch, StoreUnavailable(f"outage journal write failed: {exc}"))
                return
            for item, data, _ in batch:
                self._apply(item, len(data))
        self._requeue_accounting()
        for _, _, future in batch:
            if not future.done():
                future.set_result(None)
        if self._wants_compaction():
            self._wake.set()

    async def _compact_now(self) -> None:
        async with self._io:
            try:
                await asyncio.to_thread(self._rewrite, list(self._items.values()))
            except OSError as exc:  # the old file is intact: compaction is only an optimisation
                log.error("journal %s: compaction failed: %s", self.path, exc)

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
        superseded = self._file_bytes - len(FILE_MAGIC) - self.bytes
        if not self._items:
            return superseded > 0
        return superseded > self.bytes + COMPACT_SLACK

    # -- blocking file work (worker thread or start-up) ----------------------------------------

    def _append(self, data: bytes) -> None:
        _write_all(self._fd, data)
        self._file_bytes += len(data)
        if self.fsync:
            os.fdatasync(self._fd)
        self.syncs += 1

    def _rewrite(self, items: list[ReplayItem]) -> None:
        """Replace the file by one holding `items`, atomically (temp file, fsync, rename)."""
        tmp = self.path.with_name(LOG_NAME + ".tmp")
        data = FILE_MAGIC + b"".join(encode_record(item) for item in items)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._sync_directory()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._file_bytes = len(data)

    def _sync_directory(self) -> None:
        if not self.fsync:
            return
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _lock(directory: Path) -> int:
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise JournalLocked(
            f"journal directory {directory} is in use by another process (pid {holder}): "
            "give each exporter process its own --journal-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
