"""A real full disk for one replica's journal: a size-capped tmpfs mounted at its `--journal-dir`,
filled on demand by a filler file and freed again by removing it.

Mounting needs root (CAP_SYS_ADMIN); without it the tests that need a full disk fail under CI
and skip locally, saying so. (`tests/support/full_disk.py`, written for the journal's own tests,
does the same job; the two should become one.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.redis_server import missing_dependency

FILLER = ".filler"
CHUNK = 64 * 1024


class SmallDisk:
    """A tmpfs of `size` bytes at `path`; `fill()` leaves it (nearly) no space, `free()` undoes."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.mounted = False

    def mount(self) -> SmallDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        options = f"size={self.size},mode=0755"
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)],
            check=True,
            capture_output=True,
        )
        self.mounted = True
        return self

    def free_bytes(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Write a filler file until `leave` bytes (or less) are free: writes then get ENOSPC."""
        with (self.path / FILLER).open("ab") as filler:
            while self.free_bytes() > leave:
                size = min(CHUNK, max(self.free_bytes() - leave, 1))
                try:
                    filler.write(b"\0" * size)
                    filler.flush()
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / FILLER).unlink()

    def unmount(self) -> None:
        if not self.mounted:
            return
        result = subprocess.run(["umount", str(self.path)], capture_output=True)
        if result.returncode != 0:  # still busy: detach now, the kernel frees it when unused
            subprocess.run(["umount", "-l", str(self.path)], check=True, capture_output=True)
        self.mounted = False


@contextlib.contextmanager
def small_disk(path: Path, size: int) -> Iterator[SmallDisk]:
    """A mounted `SmallDisk`, unmounted however the block ends."""
    require_mount()
    disk = SmallDisk(path, size).mount()
    try:
        yield disk
    finally:
        disk.unmount()


def mount_refusal() -> str:
    """Why this process may not mount a tmpfs ("" when it may), found by trying."""
    with tempfile.TemporaryDirectory(prefix="tmpfs-probe-") as probe:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], capture_output=True
        )
        if result.returncode == 0:
            subprocess.run(["umount", probe], check=True, capture_output=True)
            return ""
    return result.stderr.decode(errors="replace").strip() or f"mount exited {result.returncode}"


def mount_permitted() -> bool:
    return not mount_refusal()


def require_mount() -> None:
    """Fail under CI, skip locally, when this process may not mount a tmpfs."""
    refusal = mount_refusal()
    if refusal:
        missing_dependency(
            "a tmpfs mount for the full journal disk",
            f"run the tests as root (mount -t tmpfs needs CAP_SYS_ADMIN): {refusal}",
        )
