"""SessionMetricsService: the snapshot and health loops, and the health evaluation.

Two background loops, started and stopped with the app: a real-time snapshot every
`snapshot_interval` (rates per second, active sessions, hit rates, stream clients) and a health
check every `health_interval` (runs the availability probes, scores docs/health.md's table, exports
the health gauges, records `health_changed`). Requests and scrapes only read what the loops left
behind (see `exporter.monitoring.reports`), so neither ever waits on a probe or on Redis;
`?refresh=true` joins one shared check. The components come built from
`exporter.monitoring.runtime`.

    service = SessionMetricsService(settings, metrics, events, sessions, figma, probes, hub, ...)
    await service.start()
    await service.check_health()     # probes + score now
    await service.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from msgspec import UNSET

from exporter.core.catalog import MANAGER_NAMES, MANAGERS, SERVICE_NAMES, ManagerName, ServiceName
from exporter.core.event_log import Event, EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import Settings
from exporter.core.tasks import cancel_and_wait
from exporter.core.vocabulary import HEALTH_ISSUE_CODES
from exporter.monitoring import payloads
from exporter.monitoring.health import (
    Availability,
    ComponentInputs,
    HealthReport,
    HealthThresholds,
    assess,
)
from exporter.monitoring.live_updates import Broadcaster
from exporter.monitoring.payloads import CacheCleared, Cleared, HealthCheck, Kept
from exporter.monitoring.reports import (
    cache_readings,
    fraction,
    health_body,
    instrumentations,
    memory_fill,
    memory_report,
    snapshot_body,
)
from exporter.monitoring.statistics import (
    CacheCounts,
    Reading,
    rates,
    session_activity,
    window_error_ratio,
    window_p95_ms,
)
from exporter.upstreams.figma_rate_limits import RateLimit

if TYPE_CHECKING:
    from exporter.sessions.factory import SessionLayer
    from exporter.upstreams.factory import FigmaLayer
    from exporter.upstreams.probes import Probes

log = logging.getLogger(__name__)

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
        "journal_corrupt",
        "journal_unwritable",
        "journal_writable",
    }
)
# Events after which Redis's probe may be older than what the store knows: a probe that failed
# during the outage would keep `redis_down` for up to a probe interval after the failback.
REPROBE_REDIS = frozenset({"failback"})
# `?refresh=true` is open to anyone: within this many seconds of the last probe round it answers
# from that round, so a burst of refreshes costs the operator's Figma quota one request at most.
REFRESH_MIN_INTERVAL = 2.0
CLEAR_SCOPES = ("memory", "all")


class SessionMetricsService:
    """The snapshot and health loops over the session and Figma layers."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        events: EventLog,
        sessions: SessionLayer,
        figma: FigmaLayer,
        probes: Probes,
        hub: Broadcaster,
        thresholds: HealthThresholds,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.events = events
        self.sessions = sessions
        self.figma = figma
        self.probes = probes
        self.hub = hub
        self.thresholds = thresholds
        self.started_at = time.time()
        self.report = assess({name: ComponentInputs() for name in MANAGER_NAMES}, self.thresholds)
        self.checked_at: float | None = None
        self.latest: payloads.Realtime | None = None
        self._readings: dict[str, Reading] = {}
        self._cache_history: deque[dict[str, CacheCounts]] = deque(maxlen=CACHE_HEALTH_CHECKS)
        self._health_now = asyncio.Event()
        self._check: asyncio.Future[HealthReport] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop_failures: dict[str, bool] = {}
        self.refresh_min_interval = REFRESH_MIN_INTERVAL
        self._probed_at: float | None = None  # monotonic end of the last probe round
        self._reprobe_redis = False  # the store failed back since: probe Redis before judging

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.metrics.sse_max_clients.set(self.settings.sse_max_clients)
        self.metrics.sse_clients.set(0)
        self._cache_history.append(cache_readings(self.sessions, self.figma))
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

    def _on_event(self, event: Event) -> None:
        if event.type in REPROBE_REDIS:
            self._reprobe_redis = True
        if event.type in HEALTH_TRIGGERS:
            self._health_now.set()

    # ---- snapshot ----------------------------------------------------------------------------

    async def take_snapshot(self) -> payloads.Realtime:
        """Rates since the last snapshot, active sessions, hit rates; published to the stream."""
        active = self.sessions.manager.active_count()
        now = time.monotonic()
        manager_rates: dict[str, payloads.ManagerRates] = {}
        for name, inst in instrumentations(self.sessions, self.figma).items():
            reading = Reading.of(inst, now)
            manager_rates[name] = rates(reading, self._readings.get(name))
            if name == "session":
                self._record_session_activity(reading, self._readings.get(name))
            self._readings[name] = reading
        store = self.sessions.store.status()
        self.latest = snapshot_body(
            self.settings, manager_rates, active, store, len(self.hub), self.report
        )
        # Stream clients get events one by one as `event` messages, not repeated in every snapshot.
        self.hub.publish("metrics", self.latest)
        return self.latest

    def _record_session_activity(self, now: Reading, before: Reading | None) -> None:
        since = f"in the last {now.at - before.at:.1f}s" if before is not None else "since start"
        for event_type, count in session_activity(now, before).items():
            noun = "session" if count == 1 else "sessions"
            verb = event_type.removeprefix("session_")
            self.events.record(event_type, f"{count} {noun} {verb} {since}", count=count)

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
        reprobe_redis, self._reprobe_redis = self._reprobe_redis, False
        if fresh_probes or self._probes_stale():
            await self._run_probes()
        elif reprobe_redis:
            await self.probes.probe("redis")
        self._cache_history.append(cache_readings(self.sessions, self.figma))
        return self._evaluate()

    def _probes_stale(self) -> bool:
        horizon = time.time() - self.settings.health_interval
        return any(
            status.enabled and (status.last_checked or 0) < horizon
            for status in self.probes.status().values()
        )

    async def _run_probes(self) -> None:
        budget = (
            max(self.settings.figma_timeout, self.settings.mcp_timeout, self.settings.redis_timeout)
            + 2
        )
        try:
            async with asyncio.timeout(budget):
                await self.probes.run_once()
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

    def health_inputs(self) -> dict[ManagerName, ComponentInputs]:
        """What the health table judges, per component, from the latest readings."""
        services = self.availability()
        cache = self._cache_window()
        instruments = instrumentations(self.sessions, self.figma)
        inputs: dict[ManagerName, ComponentInputs] = {}
        for spec in MANAGERS:
            own = {name: services[name] for name in spec.services}
            inputs[spec.name] = ComponentInputs(
                services=own,
                p95_latency_ms=window_p95_ms(instruments[spec.name]),
                error_ratio=window_error_ratio(instruments[spec.name]),
                cache_hit_ratio=cache[spec.name].hit_ratio,
                disabled=spec.optional and all(state == "disabled" for state in own.values()),
            )
        # The session manager owns the store: its backlog, memory and journal are judged there.
        inputs["session"] = replace(inputs["session"], **self._store_inputs())
        inputs["figma"] = replace(inputs["figma"], **self._figma_cache_inputs())
        return inputs

    def _figma_cache_inputs(self) -> dict[str, Any]:
        versions = self.figma.manager.versions
        stale = versions.policy.stale_seconds
        shortage = versions.quota_shortage() if stale > 0 else None  # no window: nothing held
        return {
            "quota_hold": shortage.describe() if shortage is not None else None,
            "stale_seconds": stale,
        }

    def _store_inputs(self) -> dict[str, Any]:
        store = self.sessions.store.status()
        journal = self.sessions.store.journal.condition()
        return {
            "replay_backlog_ratio": fraction(store.replay_pending, store.replay_max),
            "memory_fill_ratio": memory_fill(store),
            "journal_write_error": journal.write_error,
            "journal_corrupt_files": journal.corrupt_files,
        }

    def _cache_window(self) -> dict[str, CacheCounts]:
        now = cache_readings(self.sessions, self.figma)
        oldest = self._cache_history[0] if self._cache_history else {}
        return {name: counts - oldest.get(name, CacheCounts()) for name, counts in now.items()}

    def availability(self) -> dict[ServiceName, Availability]:
        """up/down/disabled/unknown per service, from the store's state and the last probes."""
        probed = self.probes.status()
        # A probe's state: disabled, unknown (not probed yet), down, up or its condition.
        result = {service: cast(Availability, probed[service].state) for service in SERVICE_NAMES}
        result["redis"] = self._redis_availability(result["redis"])
        # A lockout from a data call counts at once, not at the next probe.
        if result["figma_api"] != "disabled" and self.figma_rate_limit() is not None:
            result["figma_api"] = "rate_limited"
        return result

    def figma_rate_limit(self) -> RateLimit | None:
        """The Figma lockout in force for data calls, if any."""
        client = self.figma.figma
        return client.rate_limit() if client is not None else None

    def _redis_availability(self, probed: Availability) -> Availability:
        """Down when the store fell back (it knows at the first failed command) or the probe failed
        (it knows while no traffic flows); otherwise the probe's word, else the store's."""
        store = self.sessions.store.status()
        if not store.redis_configured:
            return "disabled"
        if store.fallback_active:
            return "down"
        if store.writes_refused:
            return "refusing"
        if probed in ("up", "down"):
            return probed
        return "up" if store.redis_connected else "down"

    def store_status(self) -> dict[str, Any]:
        return self.sessions.store.status().as_dict()

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

    def health(self) -> HealthCheck:
        """The health check's body from the latest evaluation (the `health` stream event too)."""
        return health_body(
            self.report,
            self.checked_at,
            self.availability(),
            self.probes.status(),
            self.figma_rate_limit(),
        )

    # ---- cache clearing ------------------------------------------------------------------------

    async def clear_cache(self, scope: str = "memory") -> CacheCleared:
        """Clear the memory tier (`all`: and the Figma response cache), then refresh metrics now."""
        if scope not in CLEAR_SCOPES:
            raise ValueError(f"scope must be one of {', '.join(CLEAR_SCOPES)}")
        cleared: dict[str, int] = {}
        if scope == "all":  # first, so its own count is known before the memory tier empties
            cleared["figma_responses"] = await self.figma.manager.clear_cache()
        rest = await self.sessions.store.clear_memory()
        cleared["memory_entries"] = rest + cleared.get("figma_responses", 0)
        self.events.record(
            "cache_cleared",
            f"cache cleared ({scope}): {cleared['memory_entries']} memory entries",
            scope=scope,
            **cleared,
        )
        snapshot = await self.take_snapshot()
        return CacheCleared(
            scope="all" if scope == "all" else "memory",
            cleared=Cleared(
                memory_entries=cleared["memory_entries"],
                figma_responses=cleared.get("figma_responses", UNSET),
            ),
            # The only copies are never cleared: memory-only sessions, journalled outage writes.
            kept=Kept(sessions=self.sessions.store.memory.pinned_entries),
            memory=memory_report(self.sessions.store.status()),
            snapshot_timestamp=snapshot.timestamp,
        )


def thresholds_from_settings(settings: Settings) -> HealthThresholds:
    """The docs/health.md table, latency following --slow-threshold-ms (figma:
    --figma-slow-threshold-ms), then --health-thresholds."""
    return HealthThresholds.from_overrides(
        settings.health_thresholds,
        latency_high_ms=settings.slow_threshold_ms,
        figma_latency_high_ms=settings.figma_slow_threshold_ms,
    )
