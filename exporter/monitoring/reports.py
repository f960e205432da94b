"""The JSON bodies of /api/session-metrics: performance, realtime, persistence, cache statistics,
the snapshot the loop publishes and the health check's answer.

Only reads: `Reports` looks at the components and at what the service's loops left behind (the
latest snapshot, the latest health report), so no request waits on a probe or on Redis. The
functions below it are the pure shapes, shared with the service for the bodies it publishes.

    reports = Reports(settings, metrics, events, sessions, figma, hub, event_stream, service)
    reports.persistence().replay.backlog_ratio     # a Struct (exporter.monitoring.payloads)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import msgspec
from prometheus_client.metrics import MetricWrapperBase

from exporter.core.catalog import SERVICE_NAMES, ServiceName
from exporter.core.event_log import EventLog
from exporter.core.instrumentation import Instrumentation
from exporter.core.metrics import Metrics
from exporter.core.settings import Settings
from exporter.monitoring import payloads
from exporter.monitoring.fleet_events import EventStream
from exporter.monitoring.health import (
    Availability,
    ComponentHealth,
    HealthReport,
    HealthThresholds,
    Issue,
)
from exporter.monitoring.live_updates import Broadcaster, event_body
from exporter.monitoring.payloads import (
    CacheAdvice,
    CacheStats,
    CoherenceState,
    EventStreamState,
    FigmaRevalidation,
    HealthCheck,
    HealthComponents,
    ManagersCache,
    ManagersHealth,
    ManagersPerformance,
    MemoryTier,
    Performance,
    Persistence,
    RateLimitState,
    RedisState,
    ReplayState,
    Services,
    ServiceState,
    SessionDistribution,
)
from exporter.monitoring.statistics import CacheCounts, cache_report, combined, performance
from exporter.sessions.session import NAMESPACE
from exporter.store.contract import StoreStatus
from exporter.upstreams.cache_advice import Advice, Observations, advise
from exporter.upstreams.figma_rate_limits import RateLimit
from exporter.upstreams.probes import ServiceStatus
from exporter.upstreams.response_cache import NAMESPACE as FIGMA_NAMESPACE
from exporter.upstreams.revalidating_cache import RevalidatingCache

if TYPE_CHECKING:
    from exporter.sessions.factory import SessionLayer
    from exporter.upstreams.factory import FigmaLayer

RECENT_EVENTS = 20
# Snapshot field per session verb, each from the session manager's operation rate.
SESSION_VERBS = {
    "created": "create",
    "retrieved": "get",
    "updated": "update",
    "deleted": "delete",
    "expired": "expire",
}


class LoopResults(Protocol):
    """What the service's loops leave behind for the reports (SessionMetricsService has it)."""

    @property
    def latest(self) -> payloads.Realtime | None: ...

    @property
    def report(self) -> HealthReport: ...

    @property
    def thresholds(self) -> HealthThresholds: ...


class Reports:
    """The report bodies the JSON API answers with, read from the running components."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        events: EventLog,
        sessions: SessionLayer,
        figma: FigmaLayer,
        hub: Broadcaster,
        event_stream: EventStream | None,
        results: LoopResults,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.events = events
        self.sessions = sessions
        self.figma = figma
        self.hub = hub
        self.event_stream = event_stream
        self.results = results

    def performance(self) -> Performance:
        reports = {
            name: performance(inst)
            for name, inst in instrumentations(self.sessions, self.figma).items()
        }
        return Performance(
            timestamp=time.time(),
            window_size=self.settings.window_size,
            slow_threshold_ms=self.settings.slow_threshold_ms,
            managers=ManagersPerformance(session=reports["session"], figma=reports["figma"]),
        )

    def realtime(self) -> payloads.Realtime:
        """The latest snapshot with the current stream count and the most recent events."""
        latest = self.results.latest
        assert latest is not None  # taken when the service starts
        recent = [event_body(event) for event in self.events.recent(RECENT_EVENTS)]
        return msgspec.structs.replace(latest, sse_clients=len(self.hub), recent_events=recent)

    def persistence(self) -> Persistence:
        store = self.sessions.store.status()
        components = self.results.report.components
        return Persistence(
            redis=RedisState(
                configured=store.redis_configured,
                connected=store.redis_connected,
                url=self.settings.redis_url_redacted,
                latency_ms=store.redis_latency_ms,
                breaker_state=store.breaker_state,
                fallback_active=store.fallback_active,
                fallback_since=store.fallback_since,
                failovers=store.failovers,
                writes_refused=store.writes_refused,
                writes_refused_since=store.writes_refused_since,
            ),
            replay=ReplayState(
                pending=store.replay_pending,
                max=store.replay_max,
                backlog_ratio=fraction(store.replay_pending, store.replay_max),
                replayed=store.replayed,
                dropped=store.replay_dropped,
            ),
            memory=memory_report(store),
            sessions=self._session_distribution(),
            coherence=self._coherence(),
            managers=ManagersHealth(
                session=component_health(components["session"]),
                figma=component_health(components["figma"]),
            ),
            event_stream=self._event_stream_status(),
        )

    def _session_distribution(self) -> SessionDistribution:
        """Where sessions live: all (Redis, or memory only) and this replica's memory copies."""
        memory = self.sessions.store.memory
        latest = self.results.latest
        return SessionDistribution(
            active=latest.sessions.active if latest is not None else None,
            in_memory_here=memory.count(NAMESPACE),
            figma_cache_bytes_here=memory.budget_bytes(FIGMA_NAMESPACE),
        )

    def _coherence(self) -> CoherenceState:
        layer = self.sessions
        if layer.coherence is None or layer.deployment is None:
            return CoherenceState(enabled=False)
        return msgspec.convert(
            {"enabled": True, "deployment": layer.deployment.kind, **layer.coherence.status()},
            CoherenceState,
        )

    def _event_stream_status(self) -> EventStreamState:
        stream = self.event_stream
        if stream is None:
            return EventStreamState(enabled=False)
        return EventStreamState(enabled=True, pending=stream.pending, written=stream.written)

    def cache_stats(self) -> CacheStats:
        readings = cache_readings(self.sessions, self.figma)
        thresholds = self.results.thresholds
        seen = self.figma.manager.versions.observations(self.settings.figma_cache_budget)
        return CacheStats(
            managers=ManagersCache(
                session=cache_report(readings["session"], thresholds),
                figma=cache_report(readings["figma"], thresholds),
            ),
            overall=cache_report(combined(readings.values()), thresholds),
            evictions=counter_values(self.metrics.cache_evictions),
            invalidations=counter_values(self.metrics.cache_invalidations),
            memory_tier=memory_report(self.sessions.store.status()),
            figma_revalidation=figma_revalidation(self.figma.manager.versions, seen),
            recommendations=[cache_advice(advice) for advice in advise(seen)],
        )


def figma_revalidation(cache: RevalidatingCache, seen: Observations) -> FigmaRevalidation:
    counts = cache.counts
    return FigmaRevalidation(
        enabled=cache.policy.revalidate and not seen.revalidation_refused,
        ttl_seconds=seen.ttl,
        stale_seconds=seen.stale_seconds,
        worst_staleness_seconds=cache.policy.bound,
        revalidations={"unchanged": seen.unchanged, "changed": seen.changed, "failed": seen.failed},
        unchanged_share=_rounded(seen.unchanged_share),
        waited=counts.waited,
        background=counts.background,
        downloads_avoided=counts.downloads_avoided,
        bytes_saved=counts.bytes_saved,
        meta_bytes=counts.meta_bytes,
        stale_served={"revalidating": counts.stale_revalidating, "quota": counts.stale_quota},
        evicted_early=seen.evicted_early,
        evicted_early_bytes=seen.evicted_early_bytes,
        quota_short=seen.quota_short,
    )


def cache_advice(advice: Advice) -> CacheAdvice:
    return CacheAdvice(
        advice.code,
        advice.message,
        advice.setting,
        advice.current,
        advice.suggested,
        dict(advice.observed),
    )


def _rounded(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def instrumentations(sessions: SessionLayer, figma: FigmaLayer) -> dict[str, Instrumentation]:
    return {"session": sessions.instrumentation, "figma": figma.instrumentation}


def cache_readings(sessions: SessionLayer, figma: FigmaLayer) -> dict[str, CacheCounts]:
    return {name: CacheCounts.of(inst) for name, inst in instrumentations(sessions, figma).items()}


def snapshot_body(
    settings: Settings,
    manager_rates: Mapping[str, payloads.ManagerRates],
    active: int,
    store: StoreStatus,
    sse_clients: int,
    report: HealthReport,
) -> payloads.Realtime:
    """The snapshot loop's body (`metrics` on the event stream; realtime adds recent events)."""
    session_rates = manager_rates["session"].per_operation
    rate = {verb: session_rates.get(op, 0.0) for verb, op in SESSION_VERBS.items()}
    return payloads.Realtime(
        timestamp=time.time(),
        interval_seconds=settings.snapshot_interval,
        managers=payloads.ManagersRates(
            session=manager_rates["session"], figma=manager_rates["figma"]
        ),
        sessions=payloads.SessionRates(
            active,
            rate["created"],
            rate["retrieved"],
            rate["updated"],
            rate["deleted"],
            rate["expired"],
        ),
        store=payloads.StoreSummary(
            redis_connected=store.redis_connected,
            fallback_active=store.fallback_active,
            replay_pending=store.replay_pending,
            memory_entries=store.memory_entries,
        ),
        sse_clients=sse_clients,
        health=payloads.HealthSummary(score=report.overall.score, status=report.overall.status),
    )


def health_body(
    report: HealthReport,
    checked_at: float | None,
    availability: Mapping[ServiceName, Availability],
    probes: Mapping[ServiceName, ServiceStatus],
    rate_limit: RateLimit | None,
) -> HealthCheck:
    """The health check's answer (also the `health` message on the stream)."""
    components = {name: component_health(health) for name, health in report.all.items()}
    services = {name: service_state(availability[name], probes[name]) for name in SERVICE_NAMES}
    return HealthCheck(
        score=report.overall.score,
        status=report.overall.status,  # type: ignore[arg-type]  # one of HEALTH_STATUSES
        components=HealthComponents(**components),
        issues=[health_issue(issue) for issue in report.overall.issues],
        checked_at=checked_at,
        services=Services(**services),
        figma_rate_limit=(
            rate_limit_state(rate_limit, time.time()) if rate_limit is not None else None
        ),
    )


def component_health(health: ComponentHealth) -> payloads.ComponentHealth:
    return payloads.ComponentHealth(
        health.score, health.status, [health_issue(issue) for issue in health.issues]
    )


def health_issue(issue: Issue) -> payloads.HealthIssue:
    return payloads.HealthIssue(
        issue.code,
        issue.severity,
        issue.message,
        issue.value,
        issue.threshold,
        issue.penalty,
        issue.component,
    )


def service_state(state: Availability, probe: ServiceStatus) -> ServiceState:
    return ServiceState(
        state=state,
        status=probe.state,  # type: ignore[arg-type]  # an Availability by construction
        enabled=probe.enabled,
        up=probe.up,
        latency_ms=probe.latency_ms,
        last_checked=probe.last_checked,
        last_error=probe.last_error,
        last_change=probe.last_change,
        condition=probe.condition,  # type: ignore[arg-type]  # in probes.CONDITIONS
        note=probe.note,
        details=dict(probe.details) if probe.details is not None else None,
    )


def rate_limit_state(limit: RateLimit, now: float) -> RateLimitState:
    return RateLimitState(
        until=limit.until,
        retry_after=round(limit.remaining(now), 3),
        endpoint=limit.endpoint,
        tier=limit.tier,
        limit_type=limit.limit_type,
        plan_tier=limit.plan_tier,
    )


def memory_report(store: StoreStatus) -> MemoryTier:
    return MemoryTier(
        entries=store.memory_entries,
        bytes=store.memory_bytes,
        max_entries=store.memory_max_entries,
        max_bytes=store.memory_max_bytes,
        fill_ratio=memory_fill(store),
        evictions=store.evictions,
    )


def fraction(part: float | None, whole: float | None) -> float | None:
    if not whole or part is None:
        return None
    return round(float(part) / float(whole), 4)


def memory_fill(store: StoreStatus) -> float | None:
    """The fuller of the two memory limits (entries, bytes); None when neither is set."""
    ratios = [
        fraction(store.memory_entries, store.memory_max_entries),
        fraction(store.memory_bytes, store.memory_max_bytes),
    ]
    known = [ratio for ratio in ratios if ratio is not None]
    return max(known) if known else None


def counter_values(metric: MetricWrapperBase) -> dict[str, int]:
    """A one-label counter's values by label, read from its own collect() (no registry walk)."""
    values: dict[str, int] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                values[next(iter(sample.labels.values()))] = int(sample.value)
    return values
