"""The outage journal's directory: which files it holds, and the blocking file work on them.

Called at start-up or from the journal's worker thread; no state of its own. The directory holds:

    LOCK                                 flock: one process per directory (holds its pid)
    journal.log                          the live journal: appended to, compacted
    journal.log.corrupt-<n>              a damaged journal set aside: its intact records are loaded
                                         (and replayed) at every start until the live journal
                                         has absorbed them (a compaction, or a replay emptying it)
    journal.log.corrupt-<n>.replayed     the same once absorbed: kept for inspection, never read
    journal.log.tmp                      a compaction under way: never read, removed at start
    replica-id                           this journal's replica in the fleet (`fleet.py`): a
                                         process restarted on the directory takes over its record
    fleet-members                        the other replicas it last knew of, one id a line: a
                                         process restarted while Redis lost the fleet's records
                                         still waits for them to re-seed

`<n>` is a sequence number (one more than any before it), not a time: the files are read in that
order, and a stepped wall clock must not reorder them.

    >>> set_aside_name(Path("d"), [Path("d/journal.log.corrupt-3.replayed")]).name
    'journal.log.corrupt-4'
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from exporter.core.errors import JournalLocked

LOG_NAME = "journal.log"
LOCK_NAME = "LOCK"
TMP_NAME = LOG_NAME + ".tmp"
CORRUPT_PREFIX = LOG_NAME + ".corrupt-"
REPLAYED_SUFFIX = ".replayed"
IDENTITY_NAME = "replica-id"
MEMBERS_NAME = "fleet-members"


def lock(directory: Path) -> int:
    """Hold the directory's flock (released when the descriptor closes); JournalLocked if taken.

    Works on a full or read-only disk: the pid is written only when the disk takes it."""
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno != errno.EROFS:
            raise
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # flock needs no write access
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise JournalLocked(
            f"journal directory {directory} is in use by another process (pid {holder}): "
            "give each exporter process its own --journal-dir"
        ) from None
    with contextlib.suppress(OSError):  # only a hint for the next holder's message
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def corrupt_files(directory: Path) -> list[Path]:
    """Every damaged journal set aside in `directory`, absorbed or not, oldest first."""
    return sorted(directory.glob(CORRUPT_PREFIX + "*"), key=_sequence)


def unabsorbed(paths: list[Path]) -> list[Path]:
    """Those of `paths` whose intact records the live journal does not hold yet."""
    return [path for path in paths if not path.name.endswith(REPLAYED_SUFFIX)]


def set_aside_name(directory: Path, existing: list[Path]) -> Path:
    """The name the next damaged journal is set aside under."""
    sequence = max((_sequence(path) for path in existing), default=0) + 1
    return directory / f"{CORRUPT_PREFIX}{sequence}"


def _sequence(path: Path) -> int:
    number = path.name.removeprefix(CORRUPT_PREFIX).removesuffix(REPLAYED_SUFFIX)
    return int(number) if number.isdigit() else 0


def mark_absorbed(paths: list[Path]) -> None:
    """Rename set-aside files whose intact records are now in the live journal (or replayed)."""
    for path in paths:
        os.replace(path, path.with_name(path.name + REPLAYED_SUFFIX))


def remove_stale_tmp(directory: Path) -> None:
    """Remove a compaction's leftover (a crash mid-rewrite): never read, it may fill the disk."""
    # On a read-only disk it stays: it takes no space from appends that cannot happen anyway.
    with contextlib.suppress(OSError):
        (directory / TMP_NAME).unlink(missing_ok=True)


def require_room(directory: Path, size: int) -> None:
    """OSError(ENOSPC) unless the filesystem reports `size` bytes free (for unprivileged use)."""
    stats = os.statvfs(directory)
    if stats.f_flag & os.ST_RDONLY:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    if stats.f_bavail * stats.f_frsize < size:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def open_log(path: Path, *, fsync: bool) -> int:
    """The live journal for reading and writing, created (and its directory entry synced) if
    missing: records acknowledged in a new file must not vanish with its name."""
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        if fsync:
            sync_directory(path.parent)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_file(path: Path, data: bytes, *, fsync: bool) -> None:
    """Write `path` whole (created or truncated); on failure it is removed, not left half-full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            write_at(fd, data, 0)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        raise


def write_at(fd: int, data: bytes, offset: int) -> None:
    """All of `data` at `offset` (positional: a failed write leaves no file offset behind)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def identity(directory: Path, new: str) -> str:
    """The replica id kept in `directory`, or `new` stored there (and `new` if the disk takes
    nothing: the fleet then waits for the old record a while, as for a replica without one)."""
    path = directory / IDENTITY_NAME
    with contextlib.suppress(OSError, UnicodeDecodeError):
        kept = path.read_text(encoding="ascii").strip()
        if kept.isalnum():
            return kept
    with contextlib.suppress(OSError):
        tmp = path.with_name(IDENTITY_NAME + ".tmp")
        tmp.write_text(new + "\n", encoding="ascii")
        os.replace(tmp, path)
    return new


class FleetMembersFile:
    """The other replicas' ids, kept beside the journal (`recovery.FleetMemory`)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / MEMBERS_NAME

    def load(self) -> list[str]:
        """The ids `keep` last stored (none if unreadable)."""
        with contextlib.suppress(OSError, UnicodeDecodeError):
            lines = self.path.read_text(encoding="ascii").split()
            return [line for line in lines if line.isalnum()]
        return []

    def keep(self, members: list[str]) -> None:
        """Store them (best effort: a full disk keeps the old list, which is only a hint)."""
        with contextlib.suppress(OSError):
            tmp = self.path.with_name(MEMBERS_NAME + ".tmp")
            tmp.write_text("".join(member + "\n" for member in members), encoding="ascii")
            os.replace(tmp, self.path)
