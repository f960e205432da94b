"""The durable journal's records waiting for their fsync: the group-commit queue.

`DurableJournal.record` queues a record here (`add`) and waits on its future; the writer task
takes every record queued so far at once (`take`: one write, one fsync) and settles their
futures (`acknowledge` or `fail`). Records that arrive during that fsync wait for the next batch.
Until a record is on disk it is not in the index, so the journal's bound counts it from here:
`bytes` (their encoded size) and `new_keys` (keys the index does not hold yet), recounted by
`recount` after each batch against what the index then holds.

No I/O: the futures belong to the journal's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container

from exporter.core.errors import StoreUnavailable
from exporter.store.contract import ReplayItem

Pending = tuple[ReplayItem, bytes, "asyncio.Future[None]"]


class PendingRecords:
    def __init__(self) -> None:
        self.queued: list[Pending] = []
        self.inflight: list[Pending] = []  # the batch being written and synced
        self.new_keys: set[str] = set()  # queued keys not yet in the index
        self.bytes = 0

    def __bool__(self) -> bool:
        return bool(self.queued)

    def add(self, item: ReplayItem, data: bytes, indexed: Container[str]) -> asyncio.Future[None]:
        """Queue `data` (the record of `item`); the future settles once it is durable or not."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queued.append((item, data, future))
        self.bytes += len(data)
        if item.key not in indexed:
            self.new_keys.add(item.key)
        return future

    def take(self) -> list[Pending]:
        """Every record queued so far, now in flight."""
        batch, self.queued = self.queued, []
        self.inflight = batch
        return batch

    def landed(self) -> None:
        """The batch in flight is settled (written or not)."""
        self.inflight = []

    def waiting(self) -> list[asyncio.Future[None]]:
        """The futures of every record in flight or queued."""
        return [future for _, _, future in self.inflight + self.queued]

    def recount(self, indexed: Container[str]) -> None:
        """Recount what is still queued (records that arrived during the last fsync)."""
        self.bytes = sum(len(data) for _, data, _ in self.queued)
        self.new_keys = {item.key for item, _, _ in self.queued if item.key not in indexed}

    def fail_queued(self, failure: StoreUnavailable, indexed: Container[str]) -> None:
        """Refuse every queued record (the writer failed unexpectedly)."""
        fail(self.queued, failure)
        self.queued = []
        self.recount(indexed)


def acknowledge(batch: list[Pending]) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_result(None)


def fail(batch: list[Pending], failure: StoreUnavailable) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(failure)
