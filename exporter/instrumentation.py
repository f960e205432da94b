"""Operation instrumentation shared by the session managers.

One `Instrumentation` per manager records each operation once into everything that watches it:
the Prometheus histogram and counters (pre-bound children, no label lookups on the hot path), the
rolling window the JSON API summarises, and the bounded list of recent slow operations.

`record` and `record_cache` run on every session read, so everything they touch is bound at
start-up into one `_Operation` / one pair of cache entries: a dict lookup, then plain attribute
and list updates (the fast_metrics children are lock-free), no tuple built per call.

    >>> from prometheus_client import CollectorRegistry
    >>> inst = Instrumentation(Metrics(CollectorRegistry()), "session", slow_threshold_ms=100)
    >>> inst.record("get", 0.250)
    >>> inst.slow_count
    1
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from exporter.errors import (
    ExporterError,
    SessionNotFound,
    StoreTimeout,
    StoreUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from exporter.events import EventLog
from exporter.fast_metrics import CounterChild
from exporter.metrics import (
    CACHE_RESULTS,
    CACHE_TIERS,
    ERROR_TYPES,
    OPERATIONS,
    Metrics,
    OperationChildren,
)
from exporter.window import RollingWindow

SLOW_LIST_SIZE = 50
# Errors caused by the request itself (an unknown or expired id, bad input): counted as errors,
# but not as failures in the rolling window, whose error ratio the health score judges.
CLIENT_ERRORS = frozenset({"not_found", "invalid"})


class _Operation:
    """What recording one operation touches, bound once."""

    __slots__ = ("add_failure", "add_ms", "errors", "observe", "slow")

    def __init__(
        self, children: OperationChildren, errors: dict[str, CounterChild], window: RollingWindow
    ) -> None:
        self.observe = children.duration.observe
        self.slow = children.slow
        self.errors = errors
        # The window's deques are appended to directly: RollingWindow.add is these two appends.
        self.add_ms = window.durations.append
        self.add_failure = window.failures.append


@dataclass(frozen=True, slots=True)
class SlowOperation:
    operation: str
    duration_ms: float
    timestamp: float
    context: str

    def as_dict(self) -> dict[str, object]:
        return {
            "operation": self.operation,
            "duration_ms": round(self.duration_ms, 3),
            "timestamp": self.timestamp,
            "context": self.context,
        }


def error_type(exc: BaseException) -> str:
    """Map an exception to the bounded `error` label."""
    if isinstance(exc, SessionNotFound):
        return "not_found"
    if isinstance(exc, StoreTimeout | UpstreamTimeout | TimeoutError):
        return "timeout"
    if isinstance(exc, StoreUnavailable):
        return "unavailable"
    if isinstance(exc, UpstreamError):
        return "upstream"
    if isinstance(exc, ValueError | TypeError) and not isinstance(exc, ExporterError):
        return "invalid"
    return "internal"


class Instrumentation:
    """Records operations of one manager (`session` or `figma`)."""

    def __init__(
        self,
        metrics: Metrics,
        manager: str,
        *,
        window_size: int = 100,
        slow_threshold_ms: float = 100.0,
        events: EventLog | None = None,
    ) -> None:
        self.manager = manager
        self.operations = OPERATIONS[manager]
        self.slow_threshold_s = slow_threshold_ms / 1000
        self.events = events
        self.windows = {op: RollingWindow(window_size) for op in self.operations}
        self.counts = dict.fromkeys(self.operations, 0)
        self.error_counts = dict.fromkeys(self.operations, 0)
        self.slow_recent: deque[SlowOperation] = deque(maxlen=SLOW_LIST_SIZE)
        self.slow_count = 0
        self._operations = {
            op: _Operation(
                metrics.op(manager, op),
                {err: metrics.operation_errors.labels(manager, op, err) for err in ERROR_TYPES},
                self.windows[op],
            )
            for op in self.operations
        }
        self.cache_counts = {(tier, result): 0 for tier in CACHE_TIERS for result in CACHE_RESULTS}
        # tier -> ((miss key, miss child), (hit key, hit child)), indexed by the `hit` bool.
        self._cache = {
            tier: tuple(
                ((tier, result), metrics.cache_requests.labels(manager, tier, result))
                for result in ("miss", "hit")
            )
            for tier in CACHE_TIERS
        }

    def record(
        self, operation: str, seconds: float, error: str | None = None, context: str = ""
    ) -> None:
        """Record one finished operation; `error` is an ERROR_TYPES value when it failed."""
        op = self._operations[operation]
        op.observe(seconds)
        op.add_ms(seconds * 1000)
        self.counts[operation] += 1
        if error is None:
            op.add_failure(False)
        else:
            op.add_failure(error not in CLIENT_ERRORS)
            self.error_counts[operation] += 1
            op.errors[error].value += 1
        if seconds > self.slow_threshold_s:
            self._record_slow(operation, seconds, context)

    def record_cache(self, tier: str, hit: bool) -> None:
        """Count one lookup in `tier` (memory or redis)."""
        key, child = self._cache[tier][hit]
        child.value += 1
        self.cache_counts[key] += 1

    def record_exception(
        self, operation: str, started: float, exc: BaseException, context: str = ""
    ) -> None:
        self.record(operation, time.perf_counter() - started, error_type(exc), context)

    def _record_slow(self, operation: str, seconds: float, context: str) -> None:
        self._operations[operation].slow.value += 1
        self.slow_count += 1
        slow = SlowOperation(operation, seconds * 1000, time.time(), context)
        self.slow_recent.append(slow)
        if self.events is not None:
            self.events.record(
                "slow_operation",
                f"{self.manager}.{operation} took {slow.duration_ms:.1f} ms",
                manager=self.manager,
                operation=operation,
                duration_ms=round(slow.duration_ms, 3),
            )

    def reset_windows(self) -> None:
        for window in self.windows.values():
            window.clear()
