"""What the tiered store reports: its metrics (counters bound once, gauges read from in-process
state at scrape time: no I/O in `collect()`) and its status (`StoreStatus`, for the JSON API and
the health checks).

    counters = StoreCounters(metrics)
    counters.invalidated("remote", 1)
    bind_store_gauges(metrics, memory, journal, fallback_active=lambda: False)
    store_status(memory, journal, failover, redis, breaker).fallback_active
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.core.metrics import INVALIDATION_REASONS, Metrics
from exporter.store.breaker import CircuitBreaker
from exporter.store.contract import StoreStatus
from exporter.store.failover import Failover
from exporter.store.journal import Journal
from exporter.store.memory_store import MemoryStore
from exporter.store.redis_store import RedisStore


class StoreCounters:
    """Memory-tier evictions and invalidations, children pre-bound (the hot path only counts)."""

    def __init__(self, metrics: Metrics) -> None:
        self._evictions = metrics.cache_evictions.labels("memory")
        self._invalidations = {
            reason: metrics.cache_invalidations.labels(reason) for reason in INVALIDATION_REASONS
        }

    def evicted(self, count: int) -> None:
        self._evictions.inc(count)

    def invalidated(self, reason: str, count: int) -> None:
        if count:
            self._invalidations[reason].inc(count)


def bind_store_gauges(
    metrics: Metrics,
    memory: MemoryStore,
    journal: Journal,
    *,
    fallback_active: Callable[[], bool],
) -> None:
    """Gauges mirroring the memory tier, the journal and the fallback."""
    metrics.memory_tier_entries.set_function(lambda: len(memory))
    metrics.memory_tier_bytes.set_function(lambda: memory.bytes)
    metrics.memory_tier_max_entries.set_function(lambda: memory.max_entries)
    metrics.memory_tier_max_bytes.set_function(lambda: memory.max_bytes)
    metrics.store_fallback_active.set_function(lambda: 1 if fallback_active() else 0)
    metrics.store_replay_pending.set_function(lambda: len(journal))
    metrics.store_replay_max.set_function(lambda: journal.max_entries)


def store_status(
    memory: MemoryStore,
    journal: Journal,
    failover: Failover,
    redis: RedisStore | None,
    breaker: CircuitBreaker,
) -> StoreStatus:
    latency = None if redis is None else redis.last_latency_ms
    return StoreStatus(
        redis_configured=redis is not None,
        redis_connected=redis is not None and breaker.closed,
        redis_latency_ms=None if latency is None else round(latency, 3),
        breaker_state=breaker.state if redis is not None else "disabled",
        fallback_active=failover.fallback_active,
        fallback_since=failover.fallback_since,
        replay_pending=len(journal),
        replay_max=journal.max_entries,
        replayed=journal.replayed,
        replay_dropped=journal.dropped,
        failovers=failover.failovers,
        writes_refused=failover.writes_refused,
        writes_refused_since=failover.writes_refused_since,
        memory_entries=len(memory),
        memory_bytes=memory.bytes,
        memory_max_entries=memory.max_entries,
        memory_max_bytes=memory.max_bytes,
        evictions=memory.evictions,
    )
