"""The durable journal's condition as operators see it: gauges, refused-write counts, events."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.core.errors import JournalUnwritable
from exporter.core.event_log import EventLog
from exporter.core.metrics import JOURNAL_FAILURE_REASONS, Metrics
from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.durable_journal import FAILURE_REASONS, LOG_NAME, DurableJournal
from exporter.store.journal_format import FILE_MAGIC, encode_record
from exporter.store.journal_reporting import report_journal


def put(key: str, version: int) -> ReplayItem:
    return ReplayItem(key, version, 9e9, StoredValue(b"v%d" % version, version, 9e9))


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(f"session_exporter_{name}", labels)


async def test_a_damaged_journal_is_an_event_and_gauges_at_start_up(tmp_path: Path) -> None:
    records = [encode_record(put(f"k{n}", n + 1)) for n in range(3)]
    (tmp_path / LOG_NAME).write_bytes(FILE_MAGIC + records[0] + b"\xff" * 30 + records[2])
    metrics = Metrics(CollectorRegistry())
    events = EventLog(100, metrics)
    journal = DurableJournal.open(tmp_path)
    report_journal(journal, metrics, events)

    [event] = events.recent()
    assert event.type == "journal_corrupt"
    assert event.details == {"directory": str(tmp_path), "regions": 1, "bytes": 30, "loaded": 2}
    assert sample(metrics, "store_journal_corrupt_files") == 1
    assert sample(metrics, "store_journal_corrupt_bytes") == 30
    assert sample(metrics, "store_journal_writable") == 1
    await journal.close()


async def test_refused_writes_are_counted_and_each_run_is_one_pair_of_events(
    tmp_path: Path,
) -> None:
    metrics = Metrics(CollectorRegistry())
    events = EventLog(100, metrics)
    journal = DurableJournal.open(tmp_path)
    report_journal(journal, metrics, events)
    assert sample(metrics, "store_journal_write_failures_total", reason="no_space") == 0
    assert sample(metrics, "store_journal_corrupt_files") == 0

    os.close(journal.disk.fd)  # appends fail (EBADF: reason "other") until the file is reopened
    for n in range(2):
        with pytest.raises(JournalUnwritable):
            await journal.record(put("a", n + 1))
    assert sample(metrics, "store_journal_write_failures_total", reason="other") == 2
    assert sample(metrics, "store_journal_writable") == 0

    journal.disk.fd = -1  # the next append opens the file again
    await journal.record(put("a", 3))
    assert sample(metrics, "store_journal_writable") == 1
    assert [event.type for event in events.recent()] == ["journal_unwritable", "journal_writable"]
    assert "Bad file descriptor" in events.recent()[0].message
    await journal.close()


def test_every_failure_reason_is_a_metric_label() -> None:
    assert {*FAILURE_REASONS.values(), "other"} == set(JOURNAL_FAILURE_REASONS)
