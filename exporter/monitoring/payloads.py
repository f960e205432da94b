"""The JSON bodies of the API as msgspec Structs: one declaration gives the type checker its
shape, the encoder its field order and the OpenAPI document its component schemas
(`exporter.web.openapi` derives them with `msgspec.json.schema_components`). Request bodies are
decoded into their Structs (`exporter.web.responses.read_body`), so the same declaration validates
them.

Structs are built with their constructors (msgspec validates only when decoding), so the encoded
bytes follow the values exactly as the dictionaries did: an int stays an int.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from exporter.core.metrics import HEALTH_STATUSES, REVALIDATION_RESULTS, STALE_REASONS
from exporter.core.vocabulary import ERROR_TYPES, EVENT_TYPES, HEALTH_ISSUE_CODES
from exporter.monitoring.health import Availability, Severity
from exporter.upstreams.cache_advice import ADVICE_CODES

REF_TEMPLATE = "#/components/schemas/{name}"


def OneOf(values: tuple[str, ...]) -> Meta:
    """A string from a fixed set (kept a plain `str` for the producers' types)."""
    return Meta(extra_json_schema={"enum": list(values)})


# ---- health -------------------------------------------------------------------------------------


class HealthIssue(Struct):
    """One matched row of the health table (docs/health.md), tagged with its component."""

    code: Annotated[str, OneOf(HEALTH_ISSUE_CODES)]
    severity: Severity
    message: str
    value: float
    threshold: float
    penalty: float
    component: str


class ComponentHealth(Struct):
    score: Annotated[float, Meta(ge=0, le=100)]
    status: Annotated[str, OneOf(HEALTH_STATUSES)]
    issues: list[HealthIssue]


# ---- per-manager statistics ---------------------------------------------------------------------

Ms = float | None


class OperationStats(Struct):
    """One operation: totals since start, then its rolling window's statistics."""

    count: int
    errors: int
    window_count: int
    window_errors: Annotated[
        int,
        Meta(description="failures in the window, client errors (not found, invalid) excluded"),
    ]
    avg_ms: Ms
    min_ms: Ms
    max_ms: Ms
    p50_ms: Ms
    p95_ms: Ms
    p99_ms: Ms


class PerformanceWindow(Struct):
    """Every operation's window together."""

    avg_ms: Ms
    min_ms: Ms
    max_ms: Ms
    p50_ms: Ms
    p95_ms: Ms
    p99_ms: Ms
    error_ratio: float | None


class SlowOperation(Struct):
    operation: str
    duration_ms: float
    timestamp: float
    context: str


class SlowOperations(Struct):
    threshold_ms: float
    count: int
    recent: list[SlowOperation]


class RecentError(Struct):
    """A failed operation, without its message (messages may name a session id)."""

    operation: str
    error: Annotated[str, OneOf(ERROR_TYPES)]
    client_error: bool
    timestamp: float
    detail: str


class ManagerPerformance(Struct):
    count: int
    errors: int
    window: PerformanceWindow
    operations: dict[str, OperationStats]
    slow_operations: SlowOperations
    recent_errors: Annotated[
        list[RecentError],
        Meta(description="the latest failures, newest first (bounded; no messages or ids)"),
    ]


class CacheTier(Struct):
    hits: int
    misses: int
    requests: int
    hit_rate: float | None


class CacheTiers(Struct):
    memory: CacheTier
    redis: CacheTier


class CacheReport(Struct):
    tiers: CacheTiers
    requests: int
    hit_rate: float | None
    efficiency: Annotated[
        str | None, Meta(extra_json_schema={"enum": ["excellent", "good", "fair", "poor", None]})
    ]


class MemoryTier(Struct):
    """This replica's memory tier: fill against its limits, evictions since start."""

    entries: int
    bytes: int
    max_entries: int
    max_bytes: int
    fill_ratio: float | None
    evictions: int


class RedisState(Struct):
    configured: bool
    connected: bool
    url: Annotated[
        str | None,
        Meta(
            description="the Redis URL with its userinfo and secret query options replaced by ***"
        ),
    ]
    latency_ms: float | None
    breaker_state: str
    fallback_active: bool
    fallback_since: float | None
    failovers: int
    writes_refused: str | None
    writes_refused_since: float | None


class ReplayState(Struct):
    pending: int
    max: int
    backlog_ratio: float | None
    replayed: int
    dropped: int


class SessionDistribution(Struct):
    active: Annotated[int | None, Meta(description="live sessions across all replicas")]
    in_memory_here: int
    figma_cache_bytes_here: int


class CoherenceState(Struct, forbid_unknown_fields=True):
    """Invalidation tracking between replicas' memory tiers (only `enabled` when off)."""

    enabled: bool
    deployment: Literal["standalone", "cluster", "sentinel"] | UnsetType = UNSET
    tracking_active: bool | UnsetType = UNSET
    memory_bypassed: bool | UnsetType = UNSET
    listeners: int | UnsetType = UNSET
    losses: int | UnsetType = UNSET
    lost_since: float | UnsetType | None = UNSET


class EventStreamState(Struct):
    """The event log's copy in Redis (only `enabled` without Redis)."""

    enabled: bool
    pending: int | UnsetType = UNSET
    written: int | UnsetType = UNSET


class ManagersHealth(Struct):
    session: ComponentHealth
    figma: ComponentHealth


class ManagersCache(Struct):
    session: CacheReport
    figma: CacheReport


class ManagersPerformance(Struct):
    session: ManagerPerformance
    figma: ManagerPerformance


class Persistence(Struct):
    """GET /api/session-metrics/persistence."""

    redis: RedisState
    replay: ReplayState
    memory: MemoryTier
    sessions: SessionDistribution
    coherence: CoherenceState
    managers: ManagersHealth
    event_stream: EventStreamState


class FigmaRevalidation(Struct):
    """The Figma cache's revalidation with /meta since start (docs/figma-cache.md)."""

    enabled: Annotated[bool, Meta(description="false while Figma refuses /meta (403)")]
    ttl_seconds: float
    stale_seconds: float
    worst_staleness_seconds: Annotated[
        float, Meta(description="the most a served copy may be out of date: TTL + stale seconds")
    ]
    revalidations: Annotated[
        dict[str, int], Meta(description="by result: " + ", ".join(REVALIDATION_RESULTS))
    ]
    unchanged_share: Annotated[float, Meta(ge=0, le=1)] | None
    waited: Annotated[int, Meta(description="reads that waited for a revalidation")]
    background: Annotated[int, Meta(description="revalidations while a stale copy was served")]
    downloads_avoided: int
    bytes_saved: int
    meta_bytes: Annotated[int, Meta(description="bytes the /meta answers cost")]
    stale_served: Annotated[
        dict[str, int], Meta(description="by reason: " + ", ".join(STALE_REASONS))
    ]
    evicted_early: Annotated[
        int, Meta(description="copies lost to the byte budget before their time, then refetched")
    ]
    evicted_early_bytes: int
    quota_short: Annotated[
        str | None, Meta(description="why Figma's rate limits are short now, if they are")
    ]


class CacheAdvice(Struct):
    """One computed recommendation: the setting to change (if any) and the numbers behind it."""

    code: Annotated[str, OneOf(ADVICE_CODES)]
    message: str
    setting: str | None
    current: float | None
    suggested: float | None
    observed: dict[str, float]


class CacheStats(Struct):
    """GET /api/session-metrics/cache-stats."""

    managers: ManagersCache
    overall: CacheReport
    evictions: dict[str, int]
    invalidations: dict[str, int]
    memory_tier: MemoryTier
    figma_revalidation: FigmaRevalidation
    recommendations: list[CacheAdvice]


class Performance(Struct):
    """GET /api/session-metrics/performance."""

    timestamp: float
    window_size: int
    slow_threshold_ms: float
    managers: ManagersPerformance


class Cleared(Struct, kw_only=True):
    # In this order on the wire: the Figma responses are cleared (and counted) first.
    figma_responses: int | UnsetType = UNSET
    memory_entries: int


class Kept(Struct):
    """What a cache clear never removes: the only copies (memory-only sessions, writes
    journalled during an outage)."""

    sessions: int


class CacheCleared(Struct):
    """POST /api/session-metrics/cache/clear."""

    scope: Literal["memory", "all"]
    cleared: Cleared
    kept: Kept
    memory: MemoryTier
    snapshot_timestamp: float


class ServiceState(Struct):
    """One service: `state` as health judges it (the store's word counts for Redis), then its
    probe's last result (`status`: the probe's own view)."""

    state: Availability
    status: Availability
    enabled: bool
    up: bool
    latency_ms: float | None
    last_checked: float | None
    last_error: str | None
    last_change: float | None
    condition: Literal["rate_limited", "limited_scope"] | None
    note: str | None
    details: dict[str, Any] | None


class Services(Struct):
    redis: ServiceState
    figma_api: ServiceState
    mcp_server: ServiceState


class RateLimitState(Struct):
    """The Figma lockout in force for files, nodes and images."""

    until: float
    retry_after: float
    endpoint: str
    tier: int
    limit_type: str
    plan_tier: str


class HealthComponents(Struct):
    session: ComponentHealth
    figma: ComponentHealth
    overall: ComponentHealth


class HealthCheck(Struct):
    """GET /api/session-metrics/health-check (and the stream's `health` message)."""

    score: Annotated[float, Meta(ge=0, le=100)]
    status: Literal["healthy", "degraded", "poor", "critical", "disabled"]
    components: HealthComponents
    issues: list[HealthIssue]
    checked_at: float | None
    services: Services
    figma_rate_limit: RateLimitState | None


# ---- the real-time snapshot --------------------------------------------------------------------


class Event(Struct):
    """One entry of the event log (also the stream's `event` message)."""

    id: int
    type: Annotated[str, OneOf(EVENT_TYPES)]
    message: str
    timestamp: float
    details: dict[str, Any]


class ManagerRates(Struct):
    """Per-second rates of one manager since the previous snapshot."""

    operations_per_second: float
    errors_per_second: float
    slow_per_second: float
    per_operation: dict[str, float]
    cache_lookups_per_second: float
    cache_hit_rate: float | None


class ManagersRates(Struct):
    session: ManagerRates
    figma: ManagerRates


class SessionRates(Struct):
    active: int | None
    created_per_second: float
    retrieved_per_second: float
    updated_per_second: float
    deleted_per_second: float
    expired_per_second: float


class StoreSummary(Struct):
    redis_connected: bool
    fallback_active: bool
    replay_pending: int
    memory_entries: int


class HealthSummary(Struct):
    score: float
    status: Annotated[str, OneOf(HEALTH_STATUSES)]


class Realtime(Struct):
    """GET /api/session-metrics/realtime; the stream's `metrics` message is the same snapshot
    without `recent_events` (events come one by one)."""

    timestamp: float
    interval_seconds: float
    managers: ManagersRates
    sessions: SessionRates
    store: StoreSummary
    sse_clients: int
    health: HealthSummary
    recent_events: list[Event] | UnsetType = UNSET


# ---- errors and status --------------------------------------------------------------------------


class ErrorDetail(Struct):
    code: str
    message: str
    upstream: Annotated[str, Meta(description="the upstream that failed")] | UnsetType = UNSET


class Error(Struct):
    """Every error answer: `{"error": {"code", "message"}}` (rendered from `ApiError` and the
    error table by `exporter.web.handling`)."""

    error: ErrorDetail


class Status(Struct):
    """/-/healthy and /-/ready."""

    status: Literal["ok", "ready", "starting", "stopping"]


_encoder = msgspec.json.Encoder()
encode = _encoder.encode


def schema_components(types: Iterable[type[Struct]]) -> dict[str, Any]:
    """Component schemas of `types` and of the Structs they contain, keyed by Struct name (the
    routes name the types: `exporter.web.openapi`)."""
    _, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    for schema in components.values():  # msgspec before 0.23 kept docstrings' indentation
        if "description" in schema:
            schema["description"] = inspect.cleandoc(schema["description"])
    return components
