"""Every instrument of the exporter, declared once on a registry passed in.

Label values come from the fixed tuples below, so the number of series never grows with traffic;
every known combination is created at start-up so it exists at 0. Hot paths use pre-bound
children (`metrics.op(...)`) instead of calling `.labels()` per event.

Instruments touched on every request or session operation are `exporter.core.fast_metrics` families
(lock-free: the exporter records from its one event-loop thread; see that module for the measured
cost); the rest are prometheus_client's own. Both expose the same way on the same registry.

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> metrics = Metrics(registry)
    >>> metrics.sessions_created.inc()
    >>> registry.get_sample_value("session_exporter_sessions_created_total")
    1.0
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.metrics import MetricWrapperBase

from exporter.core.catalog import MANAGER_NAMES, SERVICE_NAMES
from exporter.core.catalog import MANAGERS as CATALOG_MANAGERS
from exporter.core.catalog import SERVICES as CATALOG_SERVICES
from exporter.core.errors import UNREADABLE_CAUSES
from exporter.core.fast_metrics import CounterChild, FastCounter, FastHistogram, HistogramChild
from exporter.core.runtime_collectors import register_runtime_collectors
from exporter.core.vocabulary import ERROR_TYPES, EVENT_TYPES, HEALTH_ISSUE_CODES

PREFIX = "session_exporter"

OPERATIONS = {spec.name: spec.operations for spec in CATALOG_MANAGERS}
# Why a Redis that answers refuses writes (see redis_store.REFUSALS).
REFUSAL_REASONS = ("readonly", "oom", "misconf", "noauth", "noreplicas")
# Why the outage journal's disk refused a write (see durable_journal.FAILURE_REASONS).
JOURNAL_FAILURE_REASONS = ("no_space", "read_only", "io_error", "other")
CACHE_TIERS = ("memory", "redis")
CACHE_RESULTS = ("hit", "miss")
EVICTION_TIERS = ("memory",)
INVALIDATION_REASONS = ("remote", "flush", "tracking_lost", "clear")
# What the memory tier did with a key named by a Redis invalidation message (see coherence.py).
INVALIDATION_RESULTS = ("dropped", "absent", "checked")
BACKENDS = ("memory", "redis")
UPSTREAM_ENDPOINTS = {spec.name: spec.endpoints for spec in CATALOG_SERVICES if spec.endpoints}
STATUS_CLASSES = ("2xx", "4xx", "429", "5xx", "timeout", "error")
PROBE_FAILURE_REASONS = ("timeout", "connection", "auth", "status", "protocol", "error")
# What a revalidation of a cached Figma file with /meta found; why a copy past its TTL was served.
REVALIDATION_RESULTS = ("unchanged", "changed", "failed")
STALE_REASONS = ("revalidating", "quota")
SCREENSHOT_SOURCES = ("api", "mcp")
SCREENSHOT_OUTCOMES = ("success", "cached", "error")
HEALTH_COMPONENTS = (*MANAGER_NAMES, "overall")
HEALTH_STATUSES = ("healthy", "degraded", "poor", "critical", "disabled")
# Why the web server closed or refused a connection (exporter/web/client_limits.py).
CONNECTION_DROP_REASONS = ("header_timeout", "body_timeout", "client_limit", "total_limit")

# Operation latencies span a memory hit (tens of µs) to an upstream call (seconds). Every latency
# threshold of the alerts is a bucket boundary, so comparing a quantile with it is exact: 0.1 s and
# 0.5 s for the session manager, 2 s and 5 s for the Figma manager (prometheus/mixin.yml).
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,  # the Figma slow threshold: alerts on it are exact too
    2.5,
    5.0,
    10.0,
)
HTTP_BUCKETS = LATENCY_BUCKETS[2:]  # from 0.5 ms: a request costs at least that
SIZE_BUCKETS = tuple(float(1024 * 4**i) for i in range(8))  # 1 KiB .. 16 MiB


@dataclass(frozen=True, slots=True)
class OperationChildren:
    """Pre-bound children for one (manager, operation): what a hot path touches."""

    duration: HistogramChild
    slow: CounterChild


class Metrics:
    """All instruments, registered on `registry`. Gauges read at scrape time are set by background
    tasks or computed from in-process state; nothing here does I/O."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._claimed: set[str] = set()
        disable_created_metrics()  # type: ignore[no-untyped-call]  # halves exposition cost
        self._declare_operations()
        self._declare_sessions()
        self._declare_cache()
        self._declare_store()
        self._declare_upstreams()
        self._declare_screenshots()
        self._declare_figma_cache()
        self._declare_health()
        self._declare_service()
        self._declare_web_server()
        self._initialise_series()

    def _counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

    def _fast_counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> FastCounter:
        """A counter on the hot path (per request or operation): lock-free, see fast_metrics."""
        return FastCounter(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

    def _declare_operations(self) -> None:
        self.operation_duration = FastHistogram(
            f"{PREFIX}_operation_duration_seconds",
            "Duration of session-manager operations.",
            ("manager", "operation"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.operation_errors = self._fast_counter(
            "operation_errors",
            "Failed session-manager operations by error type.",
            ("manager", "operation", "error"),
        )
        self.slow_operations = self._fast_counter(
            "slow_operations",
            "Operations slower than the slow threshold.",
            ("manager", "operation"),
        )

    def _declare_sessions(self) -> None:
        self.sessions_created = self._fast_counter(
            "sessions_created", "Sessions created by this replica."
        )
        self.sessions_retrieved = self._fast_counter(
            "sessions_retrieved", "Sessions read successfully by this replica."
        )
        self.sessions_updated = self._fast_counter(
            "sessions_updated", "Sessions replaced by this replica."
        )
        self.sessions_deleted = self._fast_counter(
            "sessions_deleted", "Sessions deleted by this replica."
        )
        self.sessions_expired = self._fast_counter(
            "sessions_expired", "Sessions that expired, each counted once across replicas."
        )
        self.sessions_active = self._gauge("sessions_active", "Live sessions across all replicas.")
        self.sessions_unreadable = self._counter(
            "sessions_unreadable",
            "Stored session values that could not be read (damaged, or another program's),"
            " answered as unknown sessions; by cause.",
            ("cause",),
        )

    def _declare_cache(self) -> None:
        self.cache_requests = self._fast_counter(
            "cache_requests",
            "Cache lookups by manager, tier and result.",
            ("manager", "tier", "result"),
        )
        self.cache_evictions = self._counter(
            "cache_evictions", "Entries evicted to stay within bounds.", ("tier",)
        )
        self.cache_invalidations = self._counter(
            "cache_invalidations",
            "Memory-tier entries dropped because they may be stale.",
            ("reason",),
        )
        self.memory_tier_entries = self._gauge(
            "memory_tier_entries", "Entries held by the memory tier."
        )
        self.memory_tier_bytes = self._gauge(
            "memory_tier_bytes", "Encoded bytes held by the memory tier."
        )
        self.memory_tier_max_entries = self._gauge(
            "memory_tier_max_entries", "Entry limit of the memory tier."
        )
        self.memory_tier_max_bytes = self._gauge(
            "memory_tier_max_bytes", "Byte limit of the memory tier."
        )

    def _declare_store(self) -> None:
        self.store_backend_up = self._gauge(
            "store_backend_up", "Whether a store backend answers (1) or not (0).", ("backend",)
        )
        self.store_fallback_active = self._gauge(
            "store_fallback_active", "1 while Redis is unreachable and writes go to memory only."
        )
        self.store_writes_refused = self._gauge(
            "store_writes_refused",
            "1 while Redis answers but refuses writes, by reason; writes are journalled meanwhile.",
            ("reason",),
        )
        self.store_failovers = self._counter(
            "store_failovers", "Switches from Redis to memory-only fallback."
        )
        self.store_replay_pending = self._gauge(
            "store_replay_pending", "Writes journalled during an outage, not yet replayed."
        )
        self.store_replay_max = self._gauge("store_replay_max", "Bound of the replay journal.")
        self.store_replayed = self._counter(
            "store_replayed", "Journalled writes replayed to Redis (or skipped as older)."
        )
        self.store_reseeded = self._counter(
            "store_reseeded",
            "Sessions written back from the memory tier to a Redis that restarted empty.",
        )
        self.store_replay_dropped = self._counter(
            "store_replay_dropped",
            "Journalled writes lost because the journal was full: stays 0, a full journal refuses"
            " writes (503) before they are acknowledged.",
        )
        self.store_fleet_members = self._gauge(
            "store_fleet_members",
            "Other replicas sharing this Redis that this replica has heard from recently.",
        )
        self.store_fleet_settled = self._gauge(
            "store_fleet_settled",
            "1 when a session Redis lacks is a final 404: every replica has replayed its outage"
            " journal and re-seeded into the current data epoch (0: such misses answer 503).",
        )
        self.store_clock_offset = self._gauge(
            "store_clock_offset_seconds",
            "This host's wall clock minus Redis's (expiry and write versions follow Redis's clock;"
            " only displayed times follow the host's).",
        )
        self._declare_journal()
        self.coherence_tracking_active = self._gauge(
            "coherence_tracking_active",
            "1 while Redis invalidation tracking keeps the memory tier coherent.",
        )
        self.coherence_invalidation_keys = self._fast_counter(
            "coherence_invalidation_keys",
            "Keys named by Redis invalidation messages to this replica, by what its memory tier"
            " did: dropped its copy, held none (absent), or checked an own write against Redis.",
            ("result",),
        )

    def _declare_journal(self) -> None:
        self.store_journal_writable = self._gauge(
            "store_journal_writable",
            "1 while the outage journal's disk takes writes; 0 from a refused write (disk full,"
            " failing, read-only) until it takes them again.",
        )
        self.store_journal_write_failures = self._counter(
            "store_journal_write_failures",
            "Writes the outage journal's disk refused, by reason: answered 503, never"
            " acknowledged.",
            ("reason",),
        )
        self.store_journal_corrupt_files = self._gauge(
            "store_journal_corrupt_files",
            "Damaged outage-journal files set aside in the journal directory (their intact"
            " records are replayed), until an operator removes them.",
        )
        self.store_journal_corrupt_bytes = self._gauge(
            "store_journal_corrupt_bytes",
            "Bytes of damaged records found in the outage journal at start-up: writes that"
            " cannot be replayed.",
        )

    def _declare_upstreams(self) -> None:
        self.upstream_requests = self._fast_counter(
            "upstream_requests",
            "Requests to upstream services by endpoint and status class.",
            ("service", "endpoint", "status"),
        )
        self.upstream_request_duration = Histogram(
            f"{PREFIX}_upstream_request_duration_seconds",
            "Duration of upstream requests.",
            ("service", "endpoint"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_up = self._gauge(
            "upstream_up", "Whether the last probe of a configured service succeeded.", ("service",)
        )
        self.upstream_enabled = self._gauge(
            "upstream_enabled", "Whether a service is configured (1) or disabled (0).", ("service",)
        )
        self.upstream_probe_duration = self._gauge(
            "upstream_probe_duration_seconds",
            "Duration of the last availability probe.",
            ("service",),
        )
        self.upstream_probe_failures = self._counter(
            "upstream_probe_failures",
            "Failed availability probes by reason.",
            ("service", "reason"),
        )

    def _declare_screenshots(self) -> None:
        self.screenshot_duration = Histogram(
            f"{PREFIX}_screenshot_duration_seconds",
            "Screenshot capture duration, cache hits included.",
            ("source",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.screenshots = self._counter(
            "screenshots", "Screenshot requests by source and outcome.", ("source", "outcome")
        )
        self.screenshot_size = Histogram(
            f"{PREFIX}_screenshot_size_bytes",
            "Size of captured screenshots.",
            ("source",),
            buckets=SIZE_BUCKETS,
            registry=self.registry,
        )

    def _declare_figma_cache(self) -> None:
        self.figma_cache_revalidations = self._counter(
            "figma_cache_revalidations",
            "Expired Figma copies checked with GET /v1/files/:key/meta, by result: unchanged"
            " (kept, no download), changed (downloaded again), failed (downloaded again).",
            ("result",),
        )
        self.figma_cache_downloads_avoided = self._counter(
            "figma_cache_downloads_avoided",
            "Figma downloads (files, nodes, rendered images) a fixed-TTL cache would have made:"
            " copies older than the TTL served after a revalidation, once per TTL each.",
        )
        self.figma_cache_saved_bytes = self._counter(
            "figma_cache_saved_bytes",
            "Bytes of the Figma downloads avoided by revalidation.",
        )
        self.figma_cache_stale_served = self._counter(
            "figma_cache_stale_served",
            "Figma copies served past their TTL, within --figma-cache-stale-seconds: while"
            " revalidating in the background, or holding back while Figma's quota is short.",
            ("reason",),
        )

    def _declare_health(self) -> None:
        self.health_score = self._gauge("health_score", "Health score 0-100.", ("component",))
        self.health_status = self._gauge(
            "health_status",
            "Health status as a state set: 1 for the current status.",
            ("component", "status"),
        )
        self.health_issues = self._gauge(
            "health_issues", "1 while a health issue is present.", ("component", "code")
        )

    def _declare_service(self) -> None:
        self.events = self._counter("events", "Events recorded in the event log.", ("type",))
        self.sse_clients = self._gauge("sse_clients", "Connected Server-Sent Events clients.")
        self.sse_max_clients = self._gauge(
            "sse_max_clients", "Limit of concurrent Server-Sent Events clients."
        )
        self.event_stream_failures = self._counter(
            "event_stream_failures",
            "Failed writes or reads of the shared Redis event stream (events stay in memory).",
        )
        self.http_requests = self._fast_counter(
            "http_requests",
            "HTTP requests served, by route template.",
            ("route", "method", "status"),
        )
        self.http_request_duration = FastHistogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request duration by route template.",
            ("route", "method"),
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.build_info = Info(
            f"{PREFIX}_build",
            "Version and git revision of the exporter, and the Python version.",
            registry=self.registry,
        )
        register_runtime_collectors(self.registry)

    def _declare_web_server(self) -> None:
        self.web_config_last_reload_successful = self._gauge(
            "web_config_last_reload_successful",
            "1 when the last read of --web-config-file was applied (or none is used), 0 when it"
            " was refused and the last good configuration stays in force.",
        )
        self.http_connections = self._gauge("http_connections", "Open client connections.")
        self.http_max_connections = self._gauge(
            "http_max_connections", "Open client connections allowed in total."
        )
        self.http_connections_dropped = self._counter(
            "http_connections_dropped",
            "Client connections closed or refused to protect the server: request head or body"
            " too slow, too many from one address, or too many in total.",
            ("reason",),
        )

    def _initialise_series(self) -> None:
        for manager, operations in OPERATIONS.items():
            for operation in operations:
                self.op(manager, operation)
                for error in ERROR_TYPES:
                    self.operation_errors.labels(manager, operation, error)
            for tier in CACHE_TIERS:
                for result in CACHE_RESULTS:
                    self.cache_requests.labels(manager, tier, result)
        _touch(self.cache_evictions, EVICTION_TIERS)
        _touch(self.cache_invalidations, INVALIDATION_REASONS)
        _touch(self.coherence_invalidation_keys, INVALIDATION_RESULTS)  # type: ignore[arg-type]
        _touch(self.store_backend_up, BACKENDS)
        _touch(self.store_writes_refused, REFUSAL_REASONS)
        _touch(self.store_journal_write_failures, JOURNAL_FAILURE_REASONS)
        self.store_journal_writable.set(1)  # no journal on disk: the in-memory one always takes
        self.store_backend_up.labels("memory").set(1)
        for service, endpoints in UPSTREAM_ENDPOINTS.items():
            for endpoint in endpoints:
                self.upstream_request_duration.labels(service, endpoint)
                for status in STATUS_CLASSES:
                    self.upstream_requests.labels(service, endpoint, status)
        # upstream_up exists only for configured services (the probes create it): a disabled
        # service is not "down". upstream_enabled says which are configured.
        for service in SERVICE_NAMES:
            self.upstream_enabled.labels(service)
            self.upstream_probe_duration.labels(service)
            for reason in PROBE_FAILURE_REASONS:
                self.upstream_probe_failures.labels(service, reason)
        for source in SCREENSHOT_SOURCES:
            self.screenshot_duration.labels(source)
            self.screenshot_size.labels(source)
            for outcome in SCREENSHOT_OUTCOMES:
                self.screenshots.labels(source, outcome)
        _touch(self.figma_cache_revalidations, REVALIDATION_RESULTS)
        _touch(self.figma_cache_stale_served, STALE_REASONS)
        for component in HEALTH_COMPONENTS:
            self.health_score.labels(component).set(100)
            self.set_health_status(component, "healthy")
            for code in HEALTH_ISSUE_CODES:
                self.health_issues.labels(component, code)
        _touch(self.events, EVENT_TYPES)
        _touch(self.sessions_unreadable, UNREADABLE_CAUSES)
        _touch(self.http_connections_dropped, CONNECTION_DROP_REASONS)
        self.web_config_last_reload_successful.set(1)
        self.build_info.info(
            {"version": _version(), "revision": _revision(), "python": platform.python_version()}
        )

    def claim_manager(self, manager: str) -> None:
        """Reserve `manager`'s series for one Instrumentation: its JSON counts are read back from
        them, so a second recorder on the same series would count the first one's operations."""
        if manager in self._claimed:
            raise ValueError(f"the {manager!r} manager is already instrumented on this registry")
        self._claimed.add(manager)

    def op(self, manager: str, operation: str) -> OperationChildren:
        """Pre-bound children for one operation; call once at start-up and keep the result."""
        return OperationChildren(
            duration=self.operation_duration.labels(manager, operation),
            slow=self.slow_operations.labels(manager, operation),
        )

    def set_health_status(self, component: str, status: str) -> None:
        for candidate in HEALTH_STATUSES:
            self.health_status.labels(component, candidate).set(1 if candidate == status else 0)


def _touch(metric: MetricWrapperBase, values: tuple[str, ...]) -> None:
    for value in values:
        metric.labels(value)


def _revision() -> str:
    from exporter.core.build import revision

    return revision()


def _version() -> str:
    from exporter.core.build import __version__

    return __version__
