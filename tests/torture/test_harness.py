"""The harness's own tools: on real processes, a stepped clock moves a process's `time.time()`
and not its `time.monotonic()`, and a small disk really fills up and frees again; and a random
run goes on past a fault the deployment did not carry out. (A run without faults that must pass
on today's code opens `test_standalone_scenarios.py`.)"""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from tests.support.faketime import SteppedClock, probe_step
from tests.support.full_disk import small_disk
from tests.torture.checker import check
from tests.torture.nemesis import FAULTS
from tests.torture.recorder import NemesisFailed, Recorder
from tests.torture.report import render
from tests.torture.runner import carry_out
from tests.torture.trial import Trial


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


async def test_a_fault_the_deployment_did_not_carry_out_is_healed_and_the_round_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sentinel promoting no replica in time is Redis's doing: the run must not end there (it
    did, on seed 13), and the window must last until the deployment is healed."""

    class Deployment:
        healed = 0

        def heal(self, timeout: float = 30) -> None:
            self.healed += 1

    recorder = Recorder(["A"])
    trial = SimpleNamespace(recorder=recorder, deployment=Deployment(), now=0.0)

    async def promotes_nobody(trial: Trial) -> None:
        async with trial.recorder.fault("master-kill", "redis:1"):
            raise NemesisFailed("nemesis: no replica took over from redis:1 within 20 s")

    monkeypatch.setitem(FAULTS, "master-kill", promotes_nobody)
    lines: list[str] = []
    await carry_out(cast(Trial, trial), "master-kill", {}, lines.append)
    [window] = recorder.history.faults
    assert window.failed == "nemesis: no replica took over from redis:1 within 20 s"
    assert trial.deployment.healed == 1
    assert window.ended >= window.started
    assert "the round goes on" in lines[0]
    assert "not carried out" in render("t", check(recorder.history), recorder.history, rerun="")
