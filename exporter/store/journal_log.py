"""The durable journal's files on disk: every blocking step, run in a worker thread or at start-up.

The live log (`journal.log`) takes the appends; damaged files are set aside beside it (names and
helpers: `journal_files`; records: `journal_format`). Each step, and what a crash (or a failed
write) there leaves on disk:

- *Append* (`append`): the batch is written at the end of the last good record (`pwrite`, no
  O_APPEND), then fdatasync'ed; the caller acknowledges only then. Killed before the sync
  returns: whole records never acknowledged (replayed like the others: harmless, a retry would
  write them too) and a torn tail (a prefix of a record), cut off at the next start. A failed
  write or sync: the file is truncated back to the last good record at once; if even that fails,
  every later append first retries the truncation and is refused while it fails. No append ever
  follows a torn one.
- *Damage* (a flipped byte, a lost block: per-record CRC-32): found at start-up (`load`). Every
  intact record is loaded, those after a damaged region too (a sync marker and the CRC find
  them), and the file is set aside as `journal.log.corrupt-<n>` (a rename: no space needed); a
  fresh live file takes the appends. Until the live journal has absorbed its records, the
  set-aside file is loaded again at every start; then it is renamed `...replayed` and kept for
  inspection. The damage is counted (`corrupt_records`, `corrupt_bytes`, `damaged_files`).
- *Compaction* (`compact`, when `wants_compaction` says it is worth it): an empty journal's file
  is truncated in place (no space needed); otherwise the live entries are rewritten to a
  temporary file (fsync, rename, directory fsync), only when the filesystem shows room for it,
  so it never takes the space appends need. A failed rewrite removes its temporary file; the old
  file is intact. A crash between a replay and the compaction replays those entries again at the
  next start, which is harmless: replay is version-checked in Redis.
- *Probe* (`probe`): whether the disk takes appends again, by a write that changes nothing.

Not thread-safe: `DurableJournal` runs one of these at a time (its `_io` lock). No asyncio here.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from exporter.store import journal_files as files
from exporter.store.contract import ReplayItem
from exporter.store.journal_format import FILE_MAGIC, Decoded, decode_records, encode_record

log = logging.getLogger(__name__)

COMPACT_SLACK = 4 << 20  # superseded bytes tolerated before a rewrite (a hot key rewrites often)
PROBE_ROOM = 4096  # free space a probe wants before it says the journal takes writes again


class JournalLog:
    """The live log and the set-aside files of one journal directory: where the next append goes,
    what damage start-up found, and the steps above. Keeps no entries: `load` hands each record
    to its caller, `compact` is given the entries to keep."""

    def __init__(self, directory: Path, *, fsync: bool) -> None:
        self.directory = directory
        self.path = directory / files.LOG_NAME
        self.fsync = fsync
        self.fd = -1  # the live file, open for appends (-1: opened by the next step that needs it)
        self.end = 0  # where the next append goes: the end of the last good record
        self.syncs = 0  # fsyncs done: records / syncs is the group-commit batch size
        self.corrupt_records = 0  # damaged regions found at start-up (records lost)
        self.corrupt_bytes = 0
        self.torn_bytes = 0  # an unfinished append cut off at start-up (never acknowledged)
        self._tail_dirty = False  # bytes past `end` that a failed truncation left
        self._live_damaged = False  # the live file holds damage: set it aside before appending
        self._corrupt_files: list[Path] = []  # set aside in the directory, absorbed or not
        self._unabsorbed: list[Path] = []  # set aside, records not in the live file yet

    # -- what the journal reads ----------------------------------------------------------------

    def damaged_files(self) -> int:
        """Damaged files set aside (a damaged live file that could not be set aside yet too)."""
        return len(self._corrupt_files) + self._live_damaged

    def wants_compaction(self, entries: int, live_bytes: int) -> bool:
        """Whether the file is worth compacting, the journal holding `entries` (`live_bytes`):
        once it empties, when it holds more than twice its live bytes (+`COMPACT_SLACK`), and to
        absorb set-aside files."""
        if not entries:  # a truncation in place: needs no space
            return self.end > len(FILE_MAGIC) or bool(self._unabsorbed)
        superseded = self.end - len(FILE_MAGIC) - live_bytes
        return bool(self._unabsorbed) or superseded > live_bytes + COMPACT_SLACK

    def untidy(self, live_bytes: int) -> bool:
        """Anything a compaction would clean: superseded records, set-aside files, damage."""
        superseded = self.end > len(FILE_MAGIC) + live_bytes
        return superseded or bool(self._unabsorbed) or self._live_damaged

    # -- start-up ------------------------------------------------------------------------------

    def load(self, apply: Callable[[ReplayItem, int], None]) -> None:
        """Read every journal file (set-aside ones first, in order) into `apply(item, size)`."""
        files.remove_stale_tmp(self.directory)
        self._corrupt_files = files.corrupt_files(self.directory)
        self._unabsorbed = files.unabsorbed(self._corrupt_files)
        for kept in self._unabsorbed:
            decoded = self._read(kept, apply)
            log.warning(
                "journal %s: %d entries from %s, set aside as damaged, still to replay",
                self.path,
                len(decoded.items),
                kept.name,
            )
        live = self._read(self.path, apply)
        self.end = live.intact_end
        self._live_damaged = live.corrupt_regions > 0
        self._tail_dirty = live.torn_tail > 0
        self.torn_bytes = live.torn_tail

    def _read(self, path: Path, apply: Callable[[ReplayItem, int], None]) -> Decoded:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        decoded = decode_records(data)
        for item, size in zip(decoded.items, decoded.sizes, strict=True):
            apply(item, size)
        self.corrupt_records += decoded.corrupt_regions
        self.corrupt_bytes += decoded.corrupt_bytes
        return decoded

    def check_ready(self) -> None:
        """OSError unless the live file is ready for appends and the disk has room."""
        self._prepare()
        files.require_room(self.directory, PROBE_ROOM)

    # -- appends -------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Make the live file ready for an append at `end`: set a damaged one aside (a fresh
        file takes the appends), open it, cut what a failed append left past `end`."""
        if self._live_damaged:
            self._set_aside()
        if self.fd < 0:
            self.fd = files.open_log(self.path, fsync=self.fsync)
        if self._tail_dirty:
            os.ftruncate(self.fd, self.end)
            self._tail_dirty = False

    def _set_aside(self) -> None:
        kept = files.set_aside_name(self.directory, self._corrupt_files)
        self.close()
        os.replace(self.path, kept)
        self._corrupt_files.append(kept)
        self._unabsorbed.append(kept)
        self._live_damaged = False
        self._tail_dirty = False
        self.end = 0
        log.warning("journal %s: the damaged file is set aside as %s", self.path, kept.name)
        # open_log creates the fresh file and syncs the directory: both renames are durable
        # before anything is acknowledged in the new file.

    def append(self, data: bytes) -> None:
        """Write and sync `data` at `end`; on any failure, nothing of it stays in the file."""
        try:
            self._prepare()
            if self.end == 0:
                data = FILE_MAGIC + data  # a fresh file: its first append carries the magic
            files.write_at(self.fd, data, self.end)
            if self.fsync:
                os.fdatasync(self.fd)
        except OSError:
            self._cut_tail()
            raise
        self.end += len(data)
        self.syncs += 1

    def _cut_tail(self) -> None:
        """Truncate back to the last good record; if that fails too, the next append retries."""
        self._tail_dirty = True
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.end)
                self._tail_dirty = False

    def probe(self) -> None:
        """OSError unless the disk takes an append now (free space, and a write)."""
        self.check_ready()
        # The file's own first bytes, written again: the disk must take a write, and a crash
        # meanwhile leaves the file as it was. An empty file gets its magic.
        files.write_at(self.fd, FILE_MAGIC, 0)
        if self.fsync:
            os.fdatasync(self.fd)
        self.end = max(self.end, len(FILE_MAGIC))

    # -- compaction ----------------------------------------------------------------------------

    def compact(self, items: list[ReplayItem]) -> None:
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
        self.end = min(self.end, len(FILE_MAGIC))
        os.ftruncate(self.fd, self.end)
        if self.fsync:
            os.fdatasync(self.fd)

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
        self.close()
        self.end = len(data)
        self._tail_dirty = False
        self.fd = files.open_log(self.path, fsync=False)

    def close(self) -> None:
        """Close the live file (the next step that needs it opens it again)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
