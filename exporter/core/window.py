"""Rolling window statistics: pure, no I/O, no prometheus import."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Summary of the durations in a window, in milliseconds."""

    count: int
    avg_ms: float | None
    min_ms: float | None
    max_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty list (p95 of 100 values is the 95th)."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(durations_ms: Iterable[float]) -> WindowStats:
    values = sorted(durations_ms)
    if not values:
        return WindowStats(0, None, None, None, None, None, None)
    return WindowStats(
        count=len(values),
        avg_ms=round(sum(values) / len(values), 3),
        min_ms=round(values[0], 3),
        max_ms=round(values[-1], 3),
        p50_ms=round(percentile(values, 0.50), 3),
        p95_ms=round(percentile(values, 0.95), 3),
        p99_ms=round(percentile(values, 0.99), 3),
    )


class RollingWindow:
    """The last `size` operations: each one's duration in ms, negated when it failed, so that
    recording one costs a single append (`add_ms` is the deque's own bound `append`)."""

    __slots__ = ("_values", "add_ms")

    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self.add_ms = self._values.append  # a successful operation

    def add(self, duration_ms: float, failed: bool = False) -> None:
        self._values.append(-duration_ms if failed else duration_ms)

    @property
    def durations(self) -> list[float]:
        return [abs(value) for value in self._values]

    @property
    def failures(self) -> list[bool]:
        # copysign, not `< 0`: a failure that took 0.0 ms is stored as -0.0.
        return [math.copysign(1.0, value) < 0 for value in self._values]

    def __len__(self) -> int:
        return len(self._values)

    def stats(self) -> WindowStats:
        return summarize(self.durations)

    @property
    def error_count(self) -> int:
        return sum(self.failures)

    def clear(self) -> None:
        self._values.clear()
