"""How late this process's event loop runs: a Redis command that "timed out" while the loop itself
was late (CPU starvation, a long synchronous step) says nothing about Redis.

A task sleeps `interval` and records by how much it overslept; `recent()` is the worst of the
last `window` seconds. Pure bookkeeping plus one sleeping task: no I/O.

    lag = LoopLag()
    task = asyncio.create_task(lag.run())
    ...
    if lag.recent() > 0.1: ...  # the loop was starved lately
"""

from __future__ import annotations

import asyncio
from collections import deque

from exporter.tasks import raise_if_cancelled


class LoopLag:
    def __init__(self, interval: float = 0.05, window: float = 2.0) -> None:
        self.interval = interval
        self._lags: deque[float] = deque(maxlen=max(1, round(window / interval)))

    def record(self, lag: float) -> None:
        self._lags.append(max(0.0, lag))

    def recent(self) -> float:
        """The worst lag, in seconds, over the window (0 before any measurement)."""
        return max(self._lags, default=0.0)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            raise_if_cancelled()
            started = loop.time()
            await asyncio.sleep(self.interval)
            self.record(loop.time() - started - self.interval)
