"""SessionMetricsService: aggregates both managers into snapshots, health and live updates.

Two background loops, started and stopped with the app: a real-time snapshot every
`snapshot_interval` (rates per second, active sessions, hit rates, stream clients) and a health
check every `health_interval` (runs the availability probes, scores docs/health.md's table, exports
the health gauges, records `health_changed`). Requests and scrapes only read what the loops left
behind, so neither ever waits on a probe or on Redis; `?refresh=true` joins one shared check.

    async with open_service(settings, metrics, events, sessions, figma) as service:
        service.performance()            # windows per manager and operation
        await service.check_health()     # probes + score now
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics import MetricWrapperBase

from exporter.broadcast import Broadcaster
from exporter.config import Settings
from exporter.event_store import EventStream
from exporter.events import EventLog
from exporter.health import (
    Availability,
    ComponentInputs,
    HealthReport,
    HealthThresholds,
    assess,
)
from exporter.instrumentation import Instrumentation
from exporter.metrics import HEALTH_ISSUE_CODES, MANAGERS, SERVICES, Metrics
from exporter.sessions.manager import NAMESPACE
from exporter.snapshot import (
    CacheCounts,
    Reading,
    cache_report,
    combined,
    performance,
    rates,
    session_activity,
    window_error_ratio,
    window_p95_ms,
)
from exporter.tasks import cancel_and_wait
from exporter.upstreams.response_cache import NAMESPACE as FIGMA_NAMESPACE

if TYPE_CHECKING:
    from exporter.sessions.factory import SessionLayer
    from exporter.upstreams.factory import FigmaLayer

log = logging.getLogger(__name__)

RECENT_EVENTS = 20
# Health judges the cache over the last few checks: recent enough to show recovery, long enough
# that a quiet interval with three lookups does not swing the score.
CACHE_HEALTH_CHECKS = 10
# Events after which health is re-checked at once instead of at the next interval.
HEALTH_TRIGGERS = frozenset(
    {
        "failover",
        "failback",
        "upstream_down",
        "upstream_up",
        "upstream_rate_limited",
        "replay_dropped",
    }
)
FIGMA_CACHE_PREFIX = "figma:"
# `?refresh=true` is open to anyone: within this many seconds of the last probe round it answers
# from that round, so a burst of refreshes costs the operator's Figma quota one request at most.
REFRESH_MIN_INTERVAL = 2.0
CLEAR_SCOPES = ("memory", "all")


class SessionMetricsService:
    """Snapshots, health and live updates over the session and Figma layers."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        events: EventLog,
        sessions: SessionLayer,
        figma: FigmaLayer,
        *,
        thresholds: HealthThresholds | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.events = events
        self.sessions = sessions
        self.figma = figma
        self.thresholds = thresholds or thresholds_from_settings(settings)
        self.started_at = time.time()
        self.hub = Broadcaster(events, settings.sse_max_clients, metrics.sse_clients.set)
        self.event_stream = self._event_stream()
        self.report = assess({name: ComponentInputs() for name in MANAGERS}, self.thresholds)
        self.checked_at: float | None = None
        self.latest: dict[str, Any] | None = None
        self._readings: dict[str, Reading] = {}
        self._cache_history: deque[dict[str, CacheCounts]] = deque(maxlen=CACHE_HEALTH_CHECKS)
        self._health_now = asyncio.Event()
        self._check: asyncio.Future[HealthReport] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop_failures: dict[str, bool] = {}
        self.refresh_min_interval = REFRESH_MIN_INTERVAL
        self._probed_at: float | None = None  # monotonic end of the last probe round

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.metrics.sse_max_clients.set(self.settings.sse_max_clients)
        self.metrics.sse_clients.set(0)
        if self.event_stream is not None:
            await self.event_stream.start()
        self._cache_history.append(self._cache_readings())
        # Known state from the first scrape on, without announcing a "change" from nothing;
        # the probes follow in the health loop.
        self.report = assess(self.health_inputs(), self.thresholds)
        self._export(self.report)
        await self.take_snapshot()
        self.events.add_listener(self._on_event)
        self._tasks = [
            asyncio.create_task(
                self._loop("snapshot", self.settings.snapshot_interval, self.take_snapshot)
            ),
            asyncio.create_task(self._health_loop(), name="health-loop"),
        ]

    async def stop(self) -> None:
        self.events.remove_listener(self._on_event)
        self.hub.close()
        await cancel_and_wait(*self._tasks, self._check)
        self._tasks = []
        if self.event_stream is not None:
            await self.event_stream.stop()

    def _event_stream(self) -> EventStream | None:
        redis = getattr(self.sessions, "redis", None)
        if redis is None:
            return None
        return EventStream(
            redis,
            f"{self.settings.redis_key_prefix}events",
            self.events,
            self.metrics,
            maxlen=self.settings.event_log_size,
            timeout=max(1.0, self.settings.redis_timeout * 4),
            retry_interval=self.settings.redis_retry_interval,
        )

    async def _loop(self, name: str, interval: float, step: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._guarded(name, step)

    async def _health_loop(self) -> None:
        while True:
            await self._guarded("health", self._scheduled_check)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.health_interval):
                    await self._health_now.wait()
            self._health_now.clear()

    async def _scheduled_check(self) -> HealthReport:
        return await self.check_health(fresh_probes=False)

    async def _guarded(self, name: str, step: Callable[[], Awaitable[Any]]) -> None:
        """One loop step; a failure is logged once per streak and never ends the loop."""
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            if not self._loop_failures.get(name):
                log.exception("%s loop step failed; retrying every interval", name)
            self._loop_failures[name] = True
        else:
            self._loop_failures[name] = False

    def _on_event(self, event: Any) -> None:
        if event.type in HEALTH_TRIGGERS:
            self._health_now.set()

    # ---- instrumentation ---------------------------------------------------------------------

    @property
    def instrumentations(self) -> dict[str, Instrumentation]:
        return {"session": self.sessions.instrumentation, "figma": self.figma.instrumentation}

    def _cache_readings(self) -> dict[str, CacheCounts]:
        return {name: CacheCounts.of(inst) for name, inst in self.instrumentations.items()}

    # ---- snapshot ----------------------------------------------------------------------------

    async def take_snapshot(self) -> dict[str, Any]:
        """Rates since the last snapshot, active sessions, hit rates; published to the stream."""
        active = await self._active_sessions()
        now = time.monotonic()
        manager_rates = {}
        for name, inst in self.instrumentations.items():
            reading = Reading.of(inst, now)
            manager_rates[name] = rates(reading, self._readings.get(name))
            if name == "session":
                self._record_session_activity(reading, self._readings.get(name))
            self._readings[name] = reading
        session_rates = manager_rates["session"]["per_operation"]
        store = self.store_status()
        self.latest = {
            "timestamp": time.time(),
            "interval_seconds": self.settings.snapshot_interval,
            "managers": manager_rates,
            "sessions": {
                "active": active,
                **{
                    f"{verb}_per_second": session_rates.get(op, 0.0)
                    for verb, op in _SESSION_VERBS.items()
                },
            },
            "store": {
                "redis_connected": store.get("redis_connected"),
                "fallback_active": store.get("fallback_active"),
                "replay_pending": store.get("replay_pending"),
                "memory_entries": store.get("memory_entries"),
            },
            "sse_clients": len(self.hub),
            "health": {"score": self.report.overall.score, "status": self.report.overall.status},
        }
        # Stream clients get events one by one as `event` messages, not repeated in every snapshot.
        self.hub.publish("metrics", self.latest)
        return self.realtime()

    def _record_session_activity(self, now: Reading, before: Reading | None) -> None:
        since = f"in the last {now.at - before.at:.1f}s" if before is not None else "since start"
        for event_type, count in session_activity(now, before).items():
            noun = "session" if count == 1 else "sessions"
            verb = event_type.removeprefix("session_")
            self.events.record(event_type, f"{count} {noun} {verb} {since}", count=count)

    async def _active_sessions(self) -> int | None:
        """Live sessions as the manager counts them (the manager also feeds the gauge itself)."""
        try:
            count = await _maybe_await(
                self.sessions.manager.active_count(), max(1.0, self.settings.redis_timeout * 4)
            )
        except Exception as exc:  # a Redis hiccup: report unknown, the loop carries on
            log.debug("active session count unavailable: %s", type(exc).__name__)
            return None
        return int(count)

    def realtime(self) -> dict[str, Any]:
        """The latest snapshot with the current stream count and the most recent events."""
        assert self.latest is not None  # set by start()
        recent = [event.as_dict() for event in self.events.recent(RECENT_EVENTS)]
        return {**self.latest, "sse_clients": len(self.hub), "recent_events": recent}

    # ---- health ------------------------------------------------------------------------------

    async def check_health(self, *, fresh_probes: bool = True) -> HealthReport:
        """Probe and score now; concurrent callers share one check. `fresh_probes=False` (the loop)
        reuses probe results younger than one health interval (the probe loop's own rounds)."""
        if self._check is None or self._check.done():
            self._check = asyncio.ensure_future(self._probe_and_evaluate(fresh_probes))
        return await asyncio.shield(self._check)

    async def refresh_health(self) -> HealthReport:
        """`?refresh=true`: a check now, unless a probe round ended under `refresh_min_interval`
        ago (then that round's result); concurrent callers share one check either way."""
        if self._check is not None and not self._check.done():
            return await asyncio.shield(self._check)
        if (
            self._probed_at is not None
            and time.monotonic() - self._probed_at < self.refresh_min_interval
        ):
            return self.report
        return await self.check_health()

    async def _probe_and_evaluate(self, fresh_probes: bool) -> HealthReport:
        if fresh_probes or self._probes_stale():
            await self._run_probes()
        self._cache_history.append(self._cache_readings())
        return self._evaluate()

    def _probes_stale(self) -> bool:
        horizon = time.time() - self.settings.health_interval
        return any(
            status.get("enabled") and (status.get("last_checked") or 0) < horizon
            for status in self.probe_status().values()
        )

    async def _run_probes(self) -> None:
        probes = getattr(self.figma, "probes", None)
        if probes is None:
            return
        budget = (
            max(self.settings.figma_timeout, self.settings.mcp_timeout, self.settings.redis_timeout)
            + 2
        )
        try:
            async with asyncio.timeout(budget):
                await probes.run_once()
        except Exception as exc:  # a probe that cannot finish leaves its last status in place
            log.warning("availability probes did not finish: %s", type(exc).__name__)
        finally:
            self._probed_at = time.monotonic()

    def _evaluate(self) -> HealthReport:
        previous = self.report
        self.report = assess(self.health_inputs(), self.thresholds)
        self.checked_at = time.time()
        self._export(self.report)
        self._announce(previous, self.report)
        self.hub.publish("health", self.health())
        return self.report

    def health_inputs(self) -> dict[str, ComponentInputs]:
        """What the health table judges, per component, from the latest readings."""
        services = self.availability()
        store = self.store_status()
        cache = self._cache_window()
        session, figma = self.instrumentations["session"], self.instrumentations["figma"]
        return {
            "session": ComponentInputs(
                services={"redis": services["redis"]},
                p95_latency_ms=window_p95_ms(session),
                error_ratio=window_error_ratio(session),
                cache_hit_ratio=cache["session"].hit_ratio,
                replay_backlog_ratio=_fraction(
                    store.get("replay_pending"), store.get("replay_max")
                ),
                memory_fill_ratio=_memory_fill(store),
            ),
            "figma": ComponentInputs(
                services={"figma_api": services["figma_api"], "mcp_server": services["mcp_server"]},
                p95_latency_ms=window_p95_ms(figma),
                error_ratio=window_error_ratio(figma),
                cache_hit_ratio=cache["figma"].hit_ratio,
                disabled=services["figma_api"] == "disabled"
                and services["mcp_server"] == "disabled",
            ),
        }

    def _cache_window(self) -> dict[str, CacheCounts]:
        now, oldest = self._cache_readings(), self._cache_history[0] if self._cache_history else {}
        return {name: counts - oldest.get(name, CacheCounts()) for name, counts in now.items()}

    def availability(self) -> dict[str, Availability]:
        """up/down/disabled/unknown per service, from the store's state and the last probes."""
        probed = self.probe_status()
        result: dict[str, Availability] = {}
        for service in SERVICES:
            status = probed.get(service) or {}
            if not status.get("enabled", False):
                result[service] = "disabled"
            elif status.get("last_checked") is None:
                result[service] = "unknown"
            elif not status.get("up"):
                result[service] = "down"
            else:  # up, or reachable with a condition (rate_limited, limited_scope)
                result[service] = status.get("condition") or "up"
        result["redis"] = self._redis_availability(result["redis"])
        # A lockout from a data call counts at once, not at the next probe.
        if result["figma_api"] != "disabled" and self._figma_rate_limit() is not None:
            result["figma_api"] = "rate_limited"
        return result

    def _figma_rate_limit(self) -> dict[str, Any] | None:
        client = getattr(self.figma, "figma", None)
        if client is None:
            return None
        limit = client.rate_limit()
        return limit.as_dict(time.time()) if limit is not None else None

    def _redis_availability(self, probed: Availability) -> Availability:
        """Down when the store fell back (it knows at the first failed command) or the probe failed
        (it knows while no traffic flows); otherwise the probe's word, else the store's."""
        store = self.store_status()
        if not store.get("redis_configured"):
            return "disabled"
        if store.get("fallback_active"):
            return "down"
        if store.get("writes_refused"):
            return "refusing"
        if probed in ("up", "down"):
            return probed
        return "up" if store.get("redis_connected") else "down"

    def probe_status(self) -> dict[str, dict[str, Any]]:
        probes = getattr(self.figma, "probes", None)
        if probes is None:
            return {}
        return {name: _as_dict(status) for name, status in probes.status().items()}

    def _export(self, report: HealthReport) -> None:
        for name, component in report.all.items():
            self.metrics.health_score.labels(name).set(component.score)
            self.metrics.set_health_status(name, component.status)
            codes = {issue.code for issue in component.issues}
            for code in HEALTH_ISSUE_CODES:
                self.metrics.health_issues.labels(name, code).set(1 if code in codes else 0)

    def _announce(self, previous: HealthReport, current: HealthReport) -> None:
        before = previous.all
        for name, component in current.all.items():
            old = before[name].status
            if old == component.status:
                continue
            codes = [issue.code for issue in component.issues]
            self.events.record(
                "health_changed",
                f"{name} health {old} -> {component.status} (score {component.score:g})"
                + (f": {', '.join(codes)}" if codes else ""),
                component=name,
                previous=old,
                status=component.status,
                score=component.score,
                issues=codes,
            )

    def health(self) -> dict[str, Any]:
        return {
            **self.report.as_dict(),
            "checked_at": self.checked_at,
            "services": {
                service: {"state": state, **self.probe_status().get(service, {})}
                for service, state in self.availability().items()
            },
            # The Figma lockout in force for files, nodes and images (None when not limited).
            "figma_rate_limit": self._figma_rate_limit(),
        }

    # ---- persistence, cache ------------------------------------------------------------------

    def store_status(self) -> dict[str, Any]:
        return _as_dict(self.sessions.store.status())

    def persistence(self) -> dict[str, Any]:
        store = self.store_status()
        components = self.report.components
        return {
            "redis": {
                "configured": store.get("redis_configured", False),
                "connected": store.get("redis_connected", False),
                "url": self.settings.redis_url_redacted,
                "latency_ms": store.get("redis_latency_ms"),
                "breaker_state": store.get("breaker_state"),
                "fallback_active": store.get("fallback_active", False),
                "fallback_since": store.get("fallback_since"),
                "failovers": store.get("failovers", 0),
                "writes_refused": store.get("writes_refused"),
                "writes_refused_since": store.get("writes_refused_since"),
            },
            "replay": {
                "pending": store.get("replay_pending", 0),
                "max": store.get("replay_max", 0),
                "backlog_ratio": _fraction(store.get("replay_pending"), store.get("replay_max")),
                "replayed": store.get("replayed", 0),
                "dropped": store.get("replay_dropped", 0),
            },
            "memory": self._memory(store),
            "sessions": self._session_distribution(),
            "coherence": self._coherence(),
            "managers": {name: components[name].as_dict() for name in MANAGERS},
            "event_stream": self._event_stream_status(),
        }

    def _coherence(self) -> dict[str, Any]:
        layer = self.sessions
        if layer.coherence is None or layer.deployment is None:
            return {"enabled": False}
        return {"enabled": True, "deployment": layer.deployment.kind, **layer.coherence.status()}

    def _session_distribution(self) -> dict[str, Any]:
        """Where sessions live: all (Redis, or memory only) and this replica's memory copies."""
        memory = self.sessions.store.memory
        latest = self.latest or {}
        return {
            "active": latest.get("sessions", {}).get("active"),
            "in_memory_here": memory.count(NAMESPACE),
            "figma_cache_bytes_here": memory.budget_bytes(FIGMA_NAMESPACE),
        }

    def _memory(self, store: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "entries": store.get("memory_entries", 0),
            "bytes": store.get("memory_bytes", 0),
            "max_entries": store.get("memory_max_entries", self.settings.memory_max_entries),
            "max_bytes": store.get("memory_max_bytes", self.settings.memory_max_bytes),
            "fill_ratio": _memory_fill(store),
            "evictions": store.get("evictions", 0),
        }

    def _event_stream_status(self) -> dict[str, Any]:
        stream = self.event_stream
        if stream is None:
            return {"enabled": False}
        return {"enabled": True, "pending": stream.pending, "written": stream.written}

    def cache_stats(self) -> dict[str, Any]:
        readings = self._cache_readings()
        return {
            "managers": {
                name: cache_report(counts, self.thresholds) for name, counts in readings.items()
            },
            "overall": cache_report(combined(readings.values()), self.thresholds),
            "evictions": _counter_values(self.metrics.cache_evictions),
            "invalidations": _counter_values(self.metrics.cache_invalidations),
            "memory_tier": self._memory(self.store_status()),
        }

    def performance(self) -> dict[str, Any]:
        return {
            "timestamp": time.time(),
            "window_size": self.settings.window_size,
            "slow_threshold_ms": self.settings.slow_threshold_ms,
            "managers": {name: performance(inst) for name, inst in self.instrumentations.items()},
        }

    async def clear_cache(self, scope: str = "memory") -> dict[str, Any]:
        """Clear the memory tier (`all`: and the Figma response cache), then refresh metrics now."""
        if scope not in CLEAR_SCOPES:
            raise ValueError(f"scope must be one of {', '.join(CLEAR_SCOPES)}")
        cleared: dict[str, int] = {}
        if scope == "all":  # first, so its own count is known before the memory tier empties
            cleared["figma_responses"] = await self._clear_figma_cache()
        rest = int(await _maybe_await(self.sessions.store.clear_memory(), None))
        cleared["memory_entries"] = rest + cleared.get("figma_responses", 0)
        self.events.record(
            "cache_cleared",
            f"cache cleared ({scope}): {cleared['memory_entries']} memory entries",
            scope=scope,
            **cleared,
        )
        snapshot = await self.take_snapshot()
        return {
            "scope": scope,
            "cleared": cleared,
            # The only copies are never cleared: memory-only sessions, journalled outage writes.
            "kept": {"sessions": self.sessions.store.memory.pinned_entries},
            "memory": self._memory(self.store_status()),
            "snapshot_timestamp": snapshot["timestamp"],
        }

    async def _clear_figma_cache(self) -> int:
        """Figma responses wherever they are cached: the manager's own clear when it has one."""
        clear = getattr(self.figma.manager, "clear_cache", None)
        if clear is None:
            return int(
                await _maybe_await(
                    self.sessions.store.clear_memory(prefix=FIGMA_CACHE_PREFIX), None
                )
            )
        return int(await _maybe_await(clear(), None) or 0)


_SESSION_VERBS = {
    "created": "create",
    "retrieved": "get",
    "updated": "update",
    "deleted": "delete",
    "expired": "expire",
}


async def _maybe_await(value: Any, timeout: float | None) -> Any:
    """Collaborators may answer synchronously or with a coroutine; accept both."""
    if not inspect.isawaitable(value):
        return value
    async with asyncio.timeout(timeout):
        return await value


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return dict(value.as_dict())


def _fraction(part: Any, whole: Any) -> float | None:
    if not whole or part is None:
        return None
    return round(float(part) / float(whole), 4)


def _memory_fill(store: Mapping[str, Any]) -> float | None:
    ratios = [
        _fraction(store.get("memory_entries"), store.get("memory_max_entries")),
        _fraction(store.get("memory_bytes"), store.get("memory_max_bytes")),
    ]
    known = [ratio for ratio in ratios if ratio is not None]
    return max(known) if known else None


def _counter_values(metric: MetricWrapperBase) -> dict[str, int]:
    """A one-label counter's values by label, read from its own collect() (no registry walk)."""
    values: dict[str, int] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                values[next(iter(sample.labels.values()))] = int(sample.value)
    return values


def thresholds_from_settings(settings: Settings) -> HealthThresholds:
    """The docs/health.md table, latency following --slow-threshold-ms (figma:
    --figma-slow-threshold-ms), then --health-thresholds."""
    return HealthThresholds.from_overrides(
        settings.health_thresholds,
        latency_high_ms=settings.slow_threshold_ms,
        figma_latency_high_ms=settings.figma_slow_threshold_ms,
    )


@asynccontextmanager
async def open_service(
    settings: Settings,
    metrics: Metrics,
    events: EventLog,
    sessions: SessionLayer,
    figma: FigmaLayer,
    *,
    thresholds: HealthThresholds | None = None,
) -> AsyncIterator[SessionMetricsService]:
    """Start the loops (and the event stream when Redis is configured); stop them on exit."""
    service = SessionMetricsService(
        settings, metrics, events, sessions, figma, thresholds=thresholds
    )
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
