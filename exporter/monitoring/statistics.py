"""Reports built from the managers' instrumentation: performance, cache statistics, rates.

Pure functions over in-process counters and windows (no I/O), so the JSON API, the snapshot loop
and the health inputs all read the same numbers the Prometheus instruments were fed with.

    >>> from prometheus_client import CollectorRegistry
    >>> from exporter.core.metrics import Metrics
    >>> inst = Instrumentation(Metrics(CollectorRegistry()), "session")
    >>> inst.record("get", 0.004)
    >>> performance(inst).operations["get"].p50_ms
    4.0
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exporter.core import instrumentation
from exporter.core.instrumentation import CLIENT_ERRORS, Instrumentation
from exporter.core.window import summarize
from exporter.monitoring import payloads
from exporter.monitoring.health import HealthThresholds, cache_efficiency


def performance(inst: Instrumentation) -> payloads.ManagerPerformance:
    """Per operation: totals since start and the rolling window's statistics; slow operations."""
    operations = {}
    for op in inst.operations:
        window = inst.windows[op]
        s = summarize(window.durations)
        operations[op] = payloads.OperationStats(
            inst.counts[op],
            inst.error_counts[op],
            len(window),
            window.error_count,
            s.avg_ms,
            s.min_ms,
            s.max_ms,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
        )
    s = summarize([d for window in inst.windows.values() for d in window.durations])
    return payloads.ManagerPerformance(
        count=sum(inst.counts.values()),
        errors=sum(inst.error_counts.values()),
        window=payloads.PerformanceWindow(
            s.avg_ms, s.min_ms, s.max_ms, s.p50_ms, s.p95_ms, s.p99_ms, window_error_ratio(inst)
        ),
        operations=operations,
        slow_operations=payloads.SlowOperations(
            threshold_ms=round(inst.slow_threshold_s * 1000, 3),
            count=inst.slow_count,
            recent=[slow_operation(slow) for slow in reversed(inst.slow_recent)],
        ),
        recent_errors=[recent_error(error) for error in reversed(inst.errors_recent)],
    )


def slow_operation(slow: instrumentation.SlowOperation) -> payloads.SlowOperation:
    return payloads.SlowOperation(
        slow.operation, round(slow.duration_ms, 3), slow.timestamp, slow.context
    )


def recent_error(error: instrumentation.RecentError) -> payloads.RecentError:
    return payloads.RecentError(
        error.operation, error.error, error.error in CLIENT_ERRORS, error.timestamp, error.detail
    )


def window_p95_ms(inst: Instrumentation) -> float | None:
    """p95 over every operation's window together: the latency the health table judges."""
    return summarize(d for window in inst.windows.values() for d in window.durations).p95_ms


def window_error_ratio(inst: Instrumentation) -> float | None:
    total = sum(len(window) for window in inst.windows.values())
    if total == 0:
        return None
    return sum(window.error_count for window in inst.windows.values()) / total


@dataclass(frozen=True, slots=True)
class CacheCounts:
    """Hits and misses per tier: a cumulative reading or the difference of two."""

    counts: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def of(cls, inst: Instrumentation) -> CacheCounts:
        return cls(dict(inst.cache_counts))

    def __sub__(self, earlier: CacheCounts) -> CacheCounts:
        return CacheCounts(
            {key: value - earlier.counts.get(key, 0) for key, value in self.counts.items()}
        )

    def tier(self, tier: str) -> tuple[int, int]:
        return self.counts.get((tier, "hit"), 0), self.counts.get((tier, "miss"), 0)

    @property
    def lookups(self) -> int:
        """Requests that reached the cache: first-tier lookups (memory, else redis alone)."""
        memory_hits, memory_misses = self.tier("memory")
        if memory_hits + memory_misses:
            return memory_hits + memory_misses
        return sum(self.tier("redis"))

    @property
    def hit_ratio(self) -> float | None:
        """Share of requests served by any tier: a memory miss that Redis answers is still a hit."""
        lookups = self.lookups
        if lookups == 0:
            return None
        hits = self.tier("memory")[0] + self.tier("redis")[0]
        return min(1.0, hits / lookups)


def cache_report(counts: CacheCounts, thresholds: HealthThresholds) -> payloads.CacheReport:
    ratio = counts.hit_ratio
    return payloads.CacheReport(
        tiers=payloads.CacheTiers(
            memory=cache_tier(counts, "memory"), redis=cache_tier(counts, "redis")
        ),
        requests=counts.lookups,
        hit_rate=_round(ratio),
        efficiency=cache_efficiency(ratio, thresholds),
    )


def cache_tier(counts: CacheCounts, tier: str) -> payloads.CacheTier:
    hits, misses = counts.tier(tier)
    return payloads.CacheTier(hits, misses, hits + misses, _ratio(hits, hits + misses))


def combined(counts: Iterable[CacheCounts]) -> CacheCounts:
    total: dict[tuple[str, str], int] = {}
    for reading in counts:
        for key, value in reading.counts.items():
            total[key] = total.get(key, 0) + value
    return CacheCounts(total)


@dataclass(frozen=True, slots=True)
class Reading:
    """Cumulative counters of one manager at one moment: rates are differences of two readings."""

    at: float
    counts: Mapping[str, int]
    errors: Mapping[str, int]
    slow: int
    cache: CacheCounts

    @classmethod
    def of(cls, inst: Instrumentation, at: float | None = None) -> Reading:
        return cls(
            time.monotonic() if at is None else at,
            dict(inst.counts),
            dict(inst.error_counts),
            inst.slow_count,
            CacheCounts.of(inst),
        )


def rates(now: Reading, before: Reading | None) -> payloads.ManagerRates:
    """Per-second rates between two readings of one manager (zero before the second reading)."""
    elapsed = now.at - before.at if before is not None else 0.0
    if before is None or elapsed <= 0:
        before, elapsed = now, 1.0
    per_op = {
        op: _per_second(now.counts[op] - before.counts.get(op, 0), elapsed) for op in now.counts
    }
    cache = now.cache - before.cache
    return payloads.ManagerRates(
        operations_per_second=_per_second(
            sum(now.counts.values()) - sum(before.counts.values()), elapsed
        ),
        errors_per_second=_per_second(
            sum(now.errors.values()) - sum(before.errors.values()), elapsed
        ),
        slow_per_second=_per_second(now.slow - before.slow, elapsed),
        per_operation=per_op,
        cache_lookups_per_second=_per_second(cache.lookups, elapsed),
        cache_hit_rate=_round(cache.hit_ratio),
    )


# Session events are recorded in aggregate (one per kind and snapshot interval, with a count):
# one event per session would flood the bounded event log.
SESSION_EVENTS = {
    "session_created": "create",
    "session_deleted": "delete",
    "session_expired": "expire",
}


def session_activity(now: Reading, before: Reading | None) -> dict[str, int]:
    """Successful creates, deletes and expiries between two readings (since start without one)."""
    activity = {}
    for event_type, op in SESSION_EVENTS.items():
        done = now.counts.get(op, 0) - now.errors.get(op, 0)
        if before is not None:
            done -= before.counts.get(op, 0) - before.errors.get(op, 0)
        if done > 0:
            activity[event_type] = done
    return activity


def _per_second(delta: int, elapsed: float) -> float:
    return round(max(0, delta) / elapsed, 3)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
