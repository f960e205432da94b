"""The loop-lag monitor: how late the event loop ran, over a window."""

from __future__ import annotations

import asyncio
import contextlib
import time

from exporter.loop_lag import LoopLag


def test_recent_is_the_worst_lag_of_the_window() -> None:
    lag = LoopLag(interval=0.05, window=0.15)  # three samples
    assert lag.recent() == 0.0
    for value in (0.01, 0.3, 0.02):
        lag.record(value)
    assert lag.recent() == 0.3
    for value in (0.0, 0.0, 0.0):  # the late one leaves the window
        lag.record(value)
    assert lag.recent() == 0.0


async def test_a_blocked_loop_is_measured() -> None:
    lag = LoopLag(interval=0.01, window=1.0)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.03)
    time.sleep(0.2)  # a long synchronous step: the loop runs nothing meanwhile
    await asyncio.sleep(0.03)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert lag.recent() >= 0.15
