"""How late this process's event loop runs: a Redis command that "timed out" while the loop itself
stalled (CPU starvation, a long synchronous step) says nothing about Redis, since its answer may
have been waiting unread when the overdue timeout fired.

A task sleeps `interval` and records by how much it overslept, and when; `worst_since(t)` is the
worst lag measured since `t`, counting the sleep still in progress (the stall that just ended may
not be recorded yet). Only a stall *during* a wait can hide its answer: one a second earlier
cannot. Pure bookkeeping plus one sleeping task: no I/O.

    lag = LoopLag()
    task = asyncio.create_task(lag.run())
    started = time.monotonic()
    ...  # wait for something
    if lag.worst_since(started) > 0.1: ...  # the loop stalled during the wait
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from exporter.core.tasks import raise_if_cancelled


class LoopLag:
    def __init__(
        self,
        interval: float = 0.05,
        window: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.clock = clock
        # (when measured, lag); the window only bounds memory: callers ask about their own waits.
        self._lags: deque[tuple[float, float]] = deque(maxlen=max(1, round(window / interval)))
        self._due: float | None = None  # when the sleep in progress should end

    def record(self, lag: float) -> None:
        self._lags.append((self.clock(), max(0.0, lag)))

    def worst_since(self, since: float) -> float:
        """The worst lag, in seconds, measured at or after `since` (a `clock()` reading), the
        sleep in progress included: 0 if the loop ran on time."""
        now = self.clock()
        pending = now - self._due if self._due is not None else 0.0
        return max([pending, 0.0, *(lag for at, lag in self._lags if at >= since)])

    async def run(self) -> None:
        while True:
            raise_if_cancelled()
            started = self.clock()
            self._due = started + self.interval
            try:
                await asyncio.sleep(self.interval)
            finally:
                self._due = None
            self.record(self.clock() - started - self.interval)
