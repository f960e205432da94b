"""The composition root: builds every component of one exporter, in dependency order, passing
each its collaborators through its constructor; closes them in reverse.

    async with open_runtime(settings, metrics) as runtime:
        runtime.reports.persistence()
        await runtime.service.check_health()

The web app opens one per application (`exporter.web.app`); nothing here knows about HTTP.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import Settings
from exporter.monitoring.fleet import FleetPublisher
from exporter.monitoring.fleet_events import EventStream
from exporter.monitoring.fleet_view import ReplicaSummary, replica_summary
from exporter.monitoring.live_updates import Broadcaster
from exporter.monitoring.reports import Reports
from exporter.monitoring.service import SessionMetricsService, thresholds_from_settings
from exporter.monitoring.session_counters import SessionCounters
from exporter.monitoring.statistics import window_p95_ms
from exporter.sessions.factory import SessionLayer, open_session_layer
from exporter.sessions.session import session_key
from exporter.store.redis_client import RedisClient
from exporter.upstreams.factory import FigmaLayer, open_figma_layer
from exporter.upstreams.probes import Probes, open_probes, service_checks


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    metrics: Metrics
    events: EventLog
    sessions: SessionLayer
    figma: FigmaLayer
    probes: Probes
    hub: Broadcaster
    event_stream: EventStream | None
    service: SessionMetricsService
    reports: Reports
    fleet: FleetPublisher | None = None


def build_event_stream(
    settings: Settings, metrics: Metrics, events: EventLog, redis: RedisClient | None
) -> EventStream | None:
    """The shared event stream in Redis (other replicas' events in this log); none without Redis."""
    if redis is None:
        return None
    return EventStream(
        redis,
        f"{settings.redis_key_prefix}events",
        events,
        metrics,
        maxlen=settings.event_log_size,
        timeout=max(1.0, settings.redis_timeout * 4),
        retry_interval=settings.redis_retry_interval,
    )


def build_fleet(
    settings: Settings,
    sessions: SessionLayer,
    hub: Broadcaster,
    event_stream: EventStream | None,
    service: SessionMetricsService,
) -> FleetPublisher | None:
    """The fleet publisher (summaries and per-session counters in Redis); none without Redis or
    with --fleet-publish off."""
    if sessions.redis is None or event_stream is None or not settings.fleet_publish:
        return None
    manager = sessions.manager
    reads = manager.store.reads

    def expires_at(session_id: str) -> float | None:
        value = reads.get(session_key(session_id))
        return value.expires_at if value is not None else None

    def summarize() -> ReplicaSummary:
        latest = service.latest
        assert latest is not None  # taken when the service starts
        p95 = window_p95_ms(manager.instrumentation)
        return replica_summary(event_stream.replica, latest, p95, time.time())

    counters = SessionCounters(
        manager.access, settings.redis_key_prefix, expires_at, default_ttl=settings.session_ttl
    )
    return FleetPublisher(
        sessions.redis,
        settings.redis_key_prefix,
        event_stream.replica,
        summarize,
        counters,
        hub,
        interval=settings.snapshot_interval,
        timeout=max(1.0, settings.redis_timeout * 4),
    )


@asynccontextmanager
async def open_runtime(settings: Settings, metrics: Metrics) -> AsyncIterator[Runtime]:
    events = EventLog(settings.event_log_size, metrics)
    async with AsyncExitStack() as stack:
        sessions = await stack.enter_async_context(open_session_layer(settings, metrics, events))
        figma = await stack.enter_async_context(
            open_figma_layer(settings, metrics, events, sessions)
        )
        checks = service_checks(sessions.redis, figma.figma, figma.mcp)
        probes = await stack.enter_async_context(open_probes(settings, metrics, events, checks))
        event_stream = build_event_stream(settings, metrics, events, sessions.redis)
        if event_stream is not None:
            await event_stream.start()
            stack.push_async_callback(event_stream.stop)
        hub = Broadcaster(events, settings.sse_max_clients, metrics.sse_clients.set)
        thresholds = thresholds_from_settings(settings)
        service = SessionMetricsService(
            settings, metrics, events, sessions, figma, probes, hub, thresholds
        )
        await service.start()
        stack.push_async_callback(service.stop)
        reports = Reports(settings, metrics, events, sessions, figma, hub, event_stream, service)
        fleet = build_fleet(settings, sessions, hub, event_stream, service)
        if fleet is not None:
            await fleet.start()
            stack.push_async_callback(fleet.stop)
        yield Runtime(
            settings,
            metrics,
            events,
            sessions,
            figma,
            probes,
            hub,
            event_stream,
            service,
            reports,
            fleet,
        )
