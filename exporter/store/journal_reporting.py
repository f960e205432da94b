"""Makes the durable journal's condition visible: metrics, events, log lines.

The journal only keeps attributes and tells listeners (`DurableJournal.listen`); this module turns
them into what operators watch. Gauges read the attributes at scrape time (no I/O); refused writes
are counted as they happen; the events:

- `journal_corrupt` at start-up, when the journal held damaged records (writes lost; the intact
  ones are replayed, the damaged file is kept as `journal.log.corrupt-<n>`);
- `journal_unwritable` when its disk starts refusing writes (or already did at start-up), and
  `journal_writable` when it takes them again.

The health check reads `journal.condition()` itself (docs/health.md: `journal_unwritable`,
`journal_corrupt`).

    report_journal(journal, metrics, events)   # once, right after DurableJournal.open
"""

from __future__ import annotations

from exporter.core.event_log import EventLog
from exporter.core.metrics import JOURNAL_FAILURE_REASONS, Metrics
from exporter.store.durable_journal import DurableJournal, JournalChange


def report_journal(journal: DurableJournal, metrics: Metrics, events: EventLog | None) -> None:
    """Bind the journal gauges, count its refused writes, record its events from now on."""
    metrics.store_journal_writable.set_function(lambda: 0 if journal.write_error else 1)
    metrics.store_journal_corrupt_files.set_function(lambda: journal.condition().corrupt_files)
    metrics.store_journal_corrupt_bytes.set_function(lambda: journal.corrupt_bytes)
    failures = {
        reason: metrics.store_journal_write_failures.labels(reason)
        for reason in JOURNAL_FAILURE_REASONS
    }

    directory = str(journal.directory)

    def on_change(change: JournalChange) -> None:
        if change.writes:
            failures.get(change.reason, failures["other"]).inc(change.writes)
        if events is not None and change.kind == "unwritable":
            message = _unwritable(change.error)
            events.record("journal_unwritable", message, directory=directory, reason=change.reason)
        elif events is not None and change.kind == "writable":
            message = "the outage journal takes writes again"
            events.record("journal_writable", message, directory=directory)

    journal.listen(on_change)
    if events is None:
        return
    if journal.corrupt_records:
        events.record(
            "journal_corrupt",
            f"the outage journal held {journal.corrupt_records} damaged region(s)"
            f" ({journal.corrupt_bytes} bytes): those writes are lost; {journal.loaded} intact"
            " entries are replayed, the damaged file is kept for inspection",
            directory=directory,
            regions=journal.corrupt_records,
            bytes=journal.corrupt_bytes,
            loaded=journal.loaded,
        )
    if journal.write_error:
        message = _unwritable(journal.write_error)
        events.record("journal_unwritable", message, directory=directory)


def _unwritable(error: str) -> str:
    return (
        f"the outage journal's disk refuses writes ({error}): during a Redis outage writes are"
        " answered 503 until it takes them again"
    )
