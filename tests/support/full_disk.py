"""A real disk that fills up: a size-capped tmpfs mounted for one test, unmounted after it.

    with small_disk(256 * 1024) as disk:
        journal_dir = disk.path / "journal"
        disk.fill()              # a filler file takes every free byte: writes get ENOSPC
        disk.free()              # the filler is removed: space is back
        disk.read_only(True)     # remounted read-only (writes get EROFS); False: writable again

A fleet that keeps one replica's journal on such a disk for longer than a block mounts it at a
path of its choosing: `disk = mount_small_disk(path, size)`, later `unmount(disk.path)`.

Mounting needs root (or CAP_SYS_ADMIN): without it, the test fails under CI and skips locally,
saying so (`require_mount`). The tmpfs is unmounted when the block ends, whether the test passed or
not (lazily if a killed process still holds a file on it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.redis_server import missing_dependency

FILLER = ".filler"
CHUNK = 64 * 1024


@dataclass(frozen=True)
class SmallDisk:
    """A mounted tmpfs of `size` bytes at `path`."""

    path: Path
    size: int

    def fill(self, leave: int = 0) -> None:
        """Take all free space but about `leave` bytes (tmpfs counts whole 4 KiB pages)."""
        stats = os.statvfs(self.path)
        budget = stats.f_bavail * stats.f_frsize - leave
        with open(self.path / FILLER, "ab", buffering=0) as filler:  # no buffer left to flush
            while budget > 0:
                try:
                    budget -= filler.write(b"\0" * min(CHUNK, budget))
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    return

    def free(self) -> None:
        """Give back what `fill` took."""
        (self.path / FILLER).unlink(missing_ok=True)

    def read_only(self, on: bool) -> None:
        _mount("-o", f"remount,{'ro' if on else 'rw'}", str(self.path))

    def available(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize


@contextlib.contextmanager
def small_disk(size: int) -> Iterator[SmallDisk]:
    """A fresh tmpfs of `size` bytes (at least a few pages), mounted on a temporary directory."""
    mount_point = Path(tempfile.mkdtemp(prefix="small-disk-"))
    try:
        disk = mount_small_disk(mount_point, size)
        try:
            yield disk
        finally:
            unmount(mount_point)
    finally:
        shutil.rmtree(mount_point, ignore_errors=True)


def mount_small_disk(path: Path, size: int) -> SmallDisk:
    """A tmpfs of `size` bytes mounted at `path` (created if missing); `unmount(path)` undoes it."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    except (OSError, subprocess.CalledProcessError) as exc:
        missing_dependency(
            "a size-capped tmpfs (mount -t tmpfs)",
            f"mounting needs root or CAP_SYS_ADMIN ({_why(exc)})",
        )
    return SmallDisk(path, size)


def mount_refusal() -> str:
    """Why this process may not mount a tmpfs ("" when it may), found by trying."""
    with tempfile.TemporaryDirectory(prefix="tmpfs-probe-") as probe:
        try:
            _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", probe)
        except (OSError, subprocess.CalledProcessError) as exc:
            return _why(exc)
        unmount(Path(probe))
    return ""


def mount_permitted() -> bool:
    return not mount_refusal()


def require_mount() -> None:
    """Fail under CI, skip locally, when this process may not mount a tmpfs."""
    refusal = mount_refusal()
    if refusal:
        missing_dependency(
            "a size-capped tmpfs (mount -t tmpfs)",
            f"mounting needs root or CAP_SYS_ADMIN ({refusal})",
        )


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True, timeout=30)


def unmount(mount_point: Path) -> None:
    try:
        subprocess.run(["umount", str(mount_point)], check=True, capture_output=True, timeout=30)
    except subprocess.CalledProcessError:
        # Busy: a process killed by the test may not be reaped yet. Detach now, freed once it is.
        subprocess.run(["umount", "-l", str(mount_point)], check=True, capture_output=True)


def _why(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return (exc.stderr or "").strip() or f"exit code {exc.returncode}"
    return str(exc)
