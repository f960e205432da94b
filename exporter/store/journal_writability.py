"""Whether the durable journal's disk takes appends, the refusals by reason, and who hears of it.

`DurableJournal` tells this module the outcome of each disk step; this module keeps the state a
health check and a scrape read (`error`: None while the disk takes appends; `failures`: refused
records by bounded reason), logs each run of refusals once at error level, and tells listeners
(`journal_reporting`) of every change:

- `refused(exc, writes)`: an append of `writes` records failed. The first of a run is a
  `JournalChange("unwritable", ...)`, the next ones `"refused"`; returns the `JournalUnwritable`
  the writers get (503 + Retry-After: the write must not be acknowledged).
- `still_failing(exc)`: a start-up check or a probe found the disk still refusing (no change
  told: nothing was refused).
- `writable()`: an append or a probe worked; the first after a failure is `"writable"`.

No I/O, no clock: the journal's writer calls it from the event loop. A listener that raises is
logged and skipped: reporting never fails the write path.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.core.errors import JournalUnwritable

log = logging.getLogger(__name__)

# Why the disk refused an append: the bounded `reason` of the failure metric.
FAILURE_REASONS = {
    errno.ENOSPC: "no_space",
    errno.EDQUOT: "no_space",
    errno.EFBIG: "no_space",
    errno.EROFS: "read_only",
    errno.EIO: "io_error",
}


@dataclass(frozen=True, slots=True)
class JournalChange:
    """What a listener hears: `unwritable` (the first refused append of a run), `refused` (the
    next ones), `writable` (the first append that works again). `writes`: how many were refused."""

    kind: str
    reason: str = ""  # a FAILURE_REASONS value (or "other")
    error: str = ""
    writes: int = 0


ChangeListener = Callable[[JournalChange], None]


def failure_reason(exc: OSError) -> str:
    """The bounded reason for a refused append: no_space, read_only, io_error or other."""
    return FAILURE_REASONS.get(exc.errno or 0, "other")


def describe(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


class JournalWritability:
    def __init__(self, path: Path, retry_after: float) -> None:
        self.path = path  # for the log lines only
        self.retry_after = retry_after
        self.error: str | None = None  # why the disk refuses appends (None: it takes them)
        self.failures: dict[str, int] = {}  # refused records by failure reason
        self._listeners: list[ChangeListener] = []

    def listen(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def refused(self, exc: OSError, writes: int) -> JournalUnwritable:
        """Count a refused append; the first of a run is logged at error level."""
        reason, error = failure_reason(exc), describe(exc)
        self.failures[reason] = self.failures.get(reason, 0) + writes
        kind = "unwritable" if self.error is None else "refused"
        if kind == "unwritable":
            log.error(
                "journal %s: write failed (%s): refusing writes until it works", self.path, error
            )
        self.error = error
        self._tell(JournalChange(kind, reason, error, writes))
        return JournalUnwritable(
            f"outage journal write failed ({error}): retry once Redis is back", self.retry_after
        )

    def still_failing(self, exc: OSError) -> None:
        self.error = describe(exc)

    def writable(self) -> None:
        if self.error is not None:
            log.warning(
                "journal %s: takes writes again (it failed with: %s)", self.path, self.error
            )
            self.error = None
            self._tell(JournalChange("writable"))

    def _tell(self, change: JournalChange) -> None:
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:  # a reporting bug must not fail the write path
                log.exception("journal %s: a listener failed", self.path)
