"""Outage-journal targets: what durability costs a write while Redis is down.

Each round runs `WRITERS` concurrent writers, each doing its share of `OPS` writes of 1 KiB
sessions, against each candidate in turn (interleaved rounds, medians; the fsyncs hit a real file
in a temporary directory on the machine's disk):

1. the outage write path (a Session built and encoded, put in the memory tier, journalled) with
   the durable journal vs the same path with the in-memory `ReplayJournal` (goal ≥ 0.5x);
2. the journals alone: the durable append-only file, and an SQLite-WAL journal with the same
   group commit (synchronous=FULL, one transaction per batch), vs the in-memory one. This is the
   measurement behind choosing the file (informational, no goal).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.support import Result, median
from exporter.sessions.session import Session
from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.durable_journal import DurableJournal
from exporter.store.journal import ReplayJournal
from exporter.store.memory_store import MemoryStore

WRITERS = (64, 256)
OPS = 12_800
ROUNDS = 5
DATA = {"user": "ada", "roles": ["designer"], "blob": "x" * 960}

Record = Callable[[ReplayItem], Awaitable[None]]


class SqliteJournal:
    """The alternative measured: SQLite in WAL mode, latest per key, one commit per batch."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS journal (key TEXT PRIMARY KEY, version INTEGER,"
            " expires_at REAL, payload BLOB)"
        )
        self.pending: list[tuple[tuple[str, int, float, bytes | None], asyncio.Future[None]]] = []
        self.wake = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def record(self, item: ReplayItem) -> None:
        payload = None if item.value is None else item.value.payload
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(((item.key, item.version, item.expires_at, payload), future))
        self.wake.set()
        await future

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            if batch:
                await asyncio.to_thread(self._commit, [row for row, _ in batch])
                for _, future in batch:
                    future.set_result(None)

    def _commit(self, rows: list[tuple[str, int, float, bytes | None]]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO journal VALUES (?, ?, ?, ?)", rows)
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.task.cancel()
        self.db.close()


async def throughput(record: Record, write_path: bool, writers: int) -> float:
    """Writes per second with WRITERS concurrent writers."""
    memory = MemoryStore(10**7, 1 << 40)
    data = DATA

    async def writer(count: int) -> None:
        for _ in range(count):
            key = "s:" + secrets.token_urlsafe(16)
            version = time.time_ns()
            if write_path:
                now = time.time()
                session = Session(key[2:], data, now, now + 3600, version)
                value = StoredValue(session.to_document(), version, now + 3600, session)
                memory.put(key, value)
            else:
                value = StoredValue(b"x" * 1024, version, 9e9)
            await record(ReplayItem(key, version, value.expires_at, value))

    started = time.perf_counter()
    await asyncio.gather(*(writer(OPS // writers) for _ in range(writers)))
    return OPS / (time.perf_counter() - started)


def in_memory() -> Record:
    return ReplayJournal(10**7).record


async def measure(directory: Path, writers: int, write_path: bool) -> dict[str, float]:
    runs: dict[str, list[float]] = {"memory": [], "file": [], "sqlite": []}
    for round_no in range(ROUNDS):
        runs["memory"].append(await throughput(in_memory(), write_path, writers))
        path = directory / f"file-{writers}-{write_path}-{round_no}"
        journal = DurableJournal.open(path, max_entries=10**7)
        runs["file"].append(await throughput(journal.record, write_path, writers))
        await journal.close()
        if not write_path:
            db = SqliteJournal(directory / f"sqlite-{writers}-{round_no}.db")
            runs["sqlite"].append(await throughput(db.record, write_path, writers))
            db.close()
    return {name: median(values) for name, values in runs.items() if values}


async def run() -> list[Result]:
    directory = Path(tempfile.mkdtemp(prefix="journal-bench-"))
    results: list[Result] = []
    try:
        for writers in WRITERS:
            path = await measure(directory, writers, write_path=True)
            results.append(
                Result(
                    f"outage write path, {writers} writers: durable journal vs in-memory",
                    path["file"],
                    path["memory"],
                    "writes/s",
                    "≥ 0.5x",
                    path["file"] >= 0.5 * path["memory"],
                    f"{OPS} writes of 1 KiB sessions per round, medians of {ROUNDS}",
                )
            )
        alone = await measure(directory, WRITERS[-1], write_path=False)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    for name, label in (("file", "append-only file + group fsync"), ("sqlite", SQLITE)):
        results.append(
            Result(
                f"journal alone, {WRITERS[-1]} writers: {label} vs in-memory",
                alone[name],
                alone["memory"],
                "writes/s",
                "info",
                True,
            )
        )
    return results


SQLITE = "SQLite WAL, synchronous=FULL, group commit"


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(
            f"{result.name}: {result.value:.0f} vs {result.baseline:.0f} {result.unit}"
            f" = {result.ratio:.2f}x"
        )
