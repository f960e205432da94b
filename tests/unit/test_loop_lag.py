"""The loop-lag monitor: how late the event loop ran, and when."""

from __future__ import annotations

import asyncio
import contextlib
import time

from exporter.core.loop_lag import LoopLag
from tests.support.clock import ManualClock


def test_worst_since_counts_only_lags_measured_since() -> None:
    clock = ManualClock()
    lag = LoopLag(interval=0.05, clock=clock)
    assert lag.worst_since(0.0) == 0.0
    lag.record(0.3)  # at 100.0: a stall before the wait asked about
    clock.now = 101.0
    lag.record(0.02)
    assert lag.worst_since(100.0) == 0.3
    assert lag.worst_since(100.5) == 0.02


def test_the_window_bounds_what_is_kept() -> None:
    lag = LoopLag(interval=0.05, window=0.15, clock=ManualClock())  # three samples
    for value in (0.3, 0.0, 0.0, 0.0):
        lag.record(value)
    assert lag.worst_since(0.0) == 0.0


async def test_a_blocked_loop_is_measured_even_before_the_monitor_wakes() -> None:
    lag = LoopLag(interval=0.01)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.03)
    started = time.monotonic()
    time.sleep(0.2)  # a long synchronous step: the loop runs nothing meanwhile
    during = lag.worst_since(started)  # the monitor's sleep is still overdue, not yet recorded
    await asyncio.sleep(0.03)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert during >= 0.15
    assert lag.worst_since(started) >= 0.15  # and recorded once it woke
    assert lag.worst_since(time.monotonic()) < 0.15  # nothing since
