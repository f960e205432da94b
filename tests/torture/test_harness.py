"""The harness's own tools on real processes: a stepped clock moves a process's `time.time()`
and not its `time.monotonic()`, and a small disk really fills up and frees again. (A run without
faults that must pass on today's code opens `test_standalone_scenarios.py`.)"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from tests.support.faketime import SteppedClock, probe_step
from tests.support.full_disk import small_disk


@pytest.mark.parametrize("hours", [-1, 2])
def test_a_stepped_clock_moves_the_wall_clock_and_not_the_monotonic_one(
    tmp_path: Path, hours: int
) -> None:
    wall, monotonic = probe_step(SteppedClock(tmp_path / "offset"), hours * 3600)
    assert abs(wall - hours * 3600) < 5, f"time.time() moved {wall:.1f} s"
    assert 0 < monotonic < 5, f"time.monotonic() moved {monotonic:.1f} s"


def test_a_small_disk_refuses_writes_once_full_and_takes_them_once_freed() -> None:
    with small_disk(1 << 20) as disk:
        disk.fill()
        assert disk.available() == 0
        with pytest.raises(OSError) as refused, (disk.path / "journal.log").open("wb") as log:
            log.write(b"x" * 8192)
            log.flush()
        assert refused.value.errno == errno.ENOSPC
        disk.free()
        (disk.path / "journal.log").write_bytes(b"x" * 8192)
    assert not disk.path.exists()  # unmounted and removed
