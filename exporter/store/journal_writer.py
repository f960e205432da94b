"""The durable journal's writer task: the one place that touches the disk after start-up.

One asyncio task, started by the first `kick` and woken by each, does one file operation at a
time, in a worker thread (`JournalLog` is blocking and not thread-safe), in this order:

1. *Commit*: every record queued in `PendingRecords` is appended with one write and one fsync
   (group commit), then applied to the `JournalIndex` and acknowledged; a refused append fails
   the whole batch with `JournalUnwritable` (told to `JournalWritability`), nothing acknowledged.
2. *Compact*, when the file is worth it (`JournalLog.wants_compaction`); one that fails (no
   room, a disk error) is logged once per run and tried again `COMPACT_RETRY` seconds later.
3. *Probe*, while the disk refuses appends: every `retry_after` seconds (the task wakes by itself
   then), whether the disk takes a write again.

An unexpected error fails the queued records (never a writer left waiting on a dead task) and the
task goes on. `closing` stops new tasks; `stop` waits for the task to drain the queue and end.
`DurableJournal` owns this writer and is its only caller; the writer calls the journal's parts
(log, index, queue, writability), never the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from exporter.core.errors import StoreUnavailable
from exporter.store import journal_pending as pending
from exporter.store.journal_index import JournalIndex
from exporter.store.journal_log import JournalLog
from exporter.store.journal_pending import PendingRecords
from exporter.store.journal_writability import JournalWritability, describe

log = logging.getLogger(__name__)

COMPACT_RETRY = 10.0  # seconds between rewrites that could not be done (no room, a disk error)


class JournalWriter:
    def __init__(
        self,
        disk: JournalLog,
        index: JournalIndex,
        queue: PendingRecords,
        writability: JournalWritability,
        *,
        retry_after: float,
    ) -> None:
        self.disk = disk
        self.index = index
        self.queue = queue
        self.writability = writability
        self.retry_after = retry_after
        self.closing = False  # no new task; the running one ends once the queue is empty
        self._compact_after = 0.0  # monotonic: none before (the last one failed); 0: none did
        self._probed_at = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._io = asyncio.Lock()  # one file operation at a time: an append or a rewrite

    def kick(self) -> None:
        """Wake the task (start it if none runs): there is something to write, or to check."""
        self._wake.set()
        if self._task is None and not self.closing:
            with contextlib.suppress(RuntimeError):  # no running loop: the next record starts it
                self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Wait for the task to end (set `closing` first, and flush: it ends on an empty queue)."""
        if self._task is not None:
            self._wake.set()
            await self._task
            self._task = None

    def wants_compaction(self) -> bool:
        if time.monotonic() < self._compact_after:
            return False
        return self.disk.wants_compaction(len(self.index), self.index.bytes)

    async def compact_now(self) -> None:
        async with self._io:
            try:
                await asyncio.to_thread(self.disk.compact, self.index.entries())
            except OSError as exc:  # the old file is intact: compaction is only an optimisation
                # Logged once per run of failures: a full disk may last, the retries with it.
                level = logging.DEBUG if self._compact_after else logging.WARNING
                self._compact_after = time.monotonic() + COMPACT_RETRY
                log.log(
                    level, "journal %s: compaction postponed (%s)", self.disk.path, describe(exc)
                )
            else:
                self._compact_after = 0.0

    async def _run(self) -> None:
        while True:
            await self._sleep()
            try:
                if self.queue:
                    await self._commit()
                elif self.wants_compaction():
                    await self.compact_now()
                elif self.writability.error is not None:
                    await self._probe()
            except Exception:  # never leave writers waiting on a dead task
                log.exception("journal %s: writer failed", self.disk.path)
                failed = self._failure(StoreUnavailable("outage journal failed"))
                self.queue.fail_queued(failed, self.index)
            if self.closing and not self.queue:
                return
            if self.queue:
                self._wake.set()

    async def _sleep(self) -> None:
        """Until woken; while the disk refuses appends, at most until the next probe is due."""
        if self.writability.error is None or self.closing:
            await self._wake.wait()
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.retry_after):
                    await self._wake.wait()
        self._wake.clear()

    async def _commit(self) -> None:
        """Append every queued record with one write and one fsync; then acknowledge them."""
        batch = self.queue.take()
        try:
            await self._write_batch(batch)
        except Exception:
            pending.fail(batch, self._failure(StoreUnavailable("outage journal failed")))
            raise
        finally:
            self.queue.landed()

    async def _write_batch(self, batch: list[pending.Pending]) -> None:
        async with self._io:
            try:
                await asyncio.to_thread(self.disk.append, b"".join(data for _, data, _ in batch))
            except OSError as exc:
                self.queue.recount(self.index)
                pending.fail(batch, self._failure(self.writability.refused(exc, len(batch))))
                return
            self.writability.writable()
            for item, data, _ in batch:
                self.index.apply(item, len(data))
        self.queue.recount(self.index)
        pending.acknowledge(batch)
        if self.wants_compaction():
            self._wake.set()

    async def _probe(self) -> None:
        """Whether the disk takes appends again (free space, a write that changes nothing)."""
        if time.monotonic() - self._probed_at < self.retry_after:
            return
        self._probed_at = time.monotonic()
        async with self._io:
            try:
                await asyncio.to_thread(self.disk.probe)
            except OSError as exc:
                self.writability.still_failing(exc)
                return
            self.writability.writable()

    def _failure(self, failure: StoreUnavailable) -> StoreUnavailable:
        failure.retry_after = self.retry_after
        return failure
