"""The Session Management dashboard: the seed's dashboard section as provisioned Grafana panels.

Rows, top to bottom: an overview (the seed's colour-coded metric cards and circular health score),
the service-level objectives (`slo_row`: budget, SLI, burn rates, burn-rate alerts), persistence
indicators (Redis, memory fallback, replay, memory tier, per-manager health), then the
seed's four analytics tabs: Performance, Cache, Health and Real-time. Together they show every
metric family the exporter exposes; `tests/unit/test_dashboards.py` checks that none is missing.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from grafana.dashboards import slo_row
from grafana.dashboards.panels import (
    DATASOURCE,
    RANGE,
    RATE,
    SEL,
    STATUS_MAPPINGS,
    PanelBuilder,
    defined,
    gauge_panel,
    range_map,
    ratio,
    stat_panel,
    state_panel,
    status_code,
    steps,
    timeseries_panel,
    value_map,
)
from mixin.config import MixinConfig
from mixin.config import load as load_config

UID = "session-management"
TITLE = "Session Management"

# Recording rules (prometheus/rules/recording.yml) the panels reuse.
OPS = "instance_manager:session_exporter_operation_duration_seconds_count:rate5m"
ERRORS = "instance_manager:session_exporter_operation_errors:rate5m"
BUCKETS = "instance_manager:session_exporter_operation_duration_seconds_bucket:rate5m"
HITS = "instance_manager:session_exporter_cache_hits:rate5m"
LOOKUPS = "instance_manager:session_exporter_cache_lookups:rate5m"

HEALTH_STEPS = (("red", None), ("orange", 40.0), ("yellow", 60.0), ("green", 80.0))
HIT_STEPS = (("red", None), ("orange", 0.5), ("yellow", 0.75), ("green", 0.9))
HIT = 'result="hit"'
LIVE = "15m"  # time range of the Real-time row's panels
OK_2XX = 'status="2xx"'
NOT_ERROR = 'outcome!="error"'
# A memory miss that Redis answers is a hit; lookups are first-tier lookups (as the JSON API).
_HITS_BY_MANAGER = f"sum by (manager) ({HITS}{{{SEL}}})"
_LOOKUPS_BY_MANAGER = f"sum by (manager) ({LOOKUPS}{{{SEL}}})"
HIT_RATIO_BY_MANAGER = f"clamp_max({ratio(_HITS_BY_MANAGER, _LOOKUPS_BY_MANAGER)}, 1)"
HIT_RATIO = f"clamp_max({ratio(f'sum({HITS}{{{SEL}}})', f'sum({LOOKUPS}{{{SEL}}})')}, 1)"
P95_BY_MANAGER = defined(f"histogram_quantile(0.95, sum by (manager, le) ({BUCKETS}{{{SEL}}}))")


def _rate(metric: str, by: str, extra: str = "", window: str = RATE) -> str:
    matchers = f"{extra}, {SEL}" if extra else SEL
    return f"sum by ({by}) (rate({metric}{{{matchers}}}[{window}]))"


def _quantile(q: float, metric: str, by: str, extra: str = "") -> str:
    return defined(f"histogram_quantile({q}, {_rate(metric + '_bucket', f'{by}, le', extra)})")


def _latency_steps(c: MixinConfig, manager: str = "session") -> db.ThresholdsConfig:
    levels = c.latency_seconds[manager]
    return steps(("green", None), ("yellow", levels.high), ("red", levels.critical))


def _error_steps(c: MixinConfig) -> db.ThresholdsConfig:
    return steps(("green", None), ("yellow", c.error_ratio.high), ("red", c.error_ratio.critical))


def _figma_latency(panel: PanelBuilder, c: MixinConfig) -> PanelBuilder:
    """The Figma manager's series coloured by its own objective (a remote API is slower)."""
    figma = dm.DynamicConfigValue(id_val="thresholds", value=_latency_steps(c, "figma").build())
    return panel.override_by_regexp(".*figma.*", [figma])  # type: ignore[attr-defined, no-any-return]


def overview(c: MixinConfig) -> list[PanelBuilder]:
    # One line of colour-coded cards beside the health gauge, as in the seed, then a thin line.
    return [
        gauge_panel(
            "Health score",
            "Overall health score 0-100 of the worst selected replica: 100 minus penalties for "
            "unavailable dependencies, latency, errors, cache efficiency and backlog. "
            "Green >= 80 healthy, yellow >= 60 degraded, orange >= 40 poor, red critical.",
            [(f'min(session_exporter_health_score{{component="overall", {SEL}}})', "score")],
            unit="none",
            minimum=0,
            maximum=100,
            thresholds=steps(*HEALTH_STEPS),
            width=6,
            height=6,
        ),
        stat_panel(
            "Status",
            "Overall health status of the worst selected replica "
            "(healthy, degraded, poor, critical).",
            [(f"max({status_code('overall', 'instance')})", "status")],
            unit="none",
            mappings=value_map(STATUS_MAPPINGS),
            height=6,
        ),
        stat_panel(
            "Active sessions",
            "Live sessions across all replicas (they share Redis, so this is the largest report, "
            "not a sum).",
            [(f"max(session_exporter_sessions_active{{{SEL}}})", "sessions")],
            unit="short",
            thresholds=steps(("blue", None)),
            height=6,
        ),
        stat_panel(
            "Operations / s",
            "Session and Figma manager operations per second over 5 minutes, selected replicas "
            "summed.",
            [(f"sum({OPS}{{{SEL}}})", "ops/s")],
            unit="ops",
            thresholds=steps(("blue", None)),
            height=6,
        ),
        _figma_latency(
            stat_panel(
                "p95 latency",
                "95th percentile of operation duration over 5 minutes per manager, against its "
                "latency objective: session yellow above 100 ms, red above 500 ms; figma (a "
                "remote API) yellow above 2 s, red above 5 s (mixin/config.yml).",
                [(P95_BY_MANAGER, "{{manager}}")],
                unit="s",
                thresholds=_latency_steps(c),
                height=6,
            ),
            c,
        ),
        stat_panel(
            "Error ratio",
            "Share of operations that failed for server-side reasons over 5 minutes (unknown "
            "sessions and bad input excluded). Yellow above 1 %, red above 5 %.",
            [(ratio(f"sum({ERRORS}{{{SEL}}})", f"sum({OPS}{{{SEL}}})"), "errors")],
            unit="percentunit",
            thresholds=_error_steps(c),
            decimals=2,
            height=6,
        ),
        stat_panel(
            "Cache hit ratio",
            "Share of cache lookups (memory and Redis tiers, both managers) that hit over "
            "5 minutes. Green >= 90 % excellent, yellow >= 75 % good, orange >= 50 % fair, "
            "red poor.",
            [(HIT_RATIO, "hit ratio")],
            unit="percentunit",
            thresholds=steps(*HIT_STEPS),
            decimals=1,
            height=6,
        ),
        stat_panel(
            "Slow operations",
            "Operations slower than the slow threshold (100 ms by default) in the dashboard's "
            "time range.",
            [(f"sum(increase(session_exporter_slow_operations_total{{{SEL}}}[{RANGE}]))", "slow")],
            unit="short",
            thresholds=steps(("green", None), ("yellow", 1.0)),
            decimals=0,
            width=12,
            height=3,
        ),
        stat_panel(
            "Replicas by version",
            "Scraped replicas per exporter version (session_exporter_build_info).",
            [(f"count by (version) (session_exporter_build_info{{{SEL}}})", "v{{version}}")],
            unit="short",
            thresholds=steps(("blue", None)),
            width=12,
            height=3,
        ),
    ]


def persistence() -> list[PanelBuilder]:
    up_down = value_map({0: ("down", "red"), 1: ("up", "green")})
    return [
        stat_panel(
            "Redis",
            "Whether each replica's Redis backend answers. Down with Redis configured means the "
            "memory fallback is serving.",
            [(f'session_exporter_store_backend_up{{backend="redis", {SEL}}}', "{{instance}}")],
            unit="none",
            mappings=up_down,
            width=4,
        ),
        stat_panel(
            "Store mode",
            "Memory fallback is active while Redis is unreachable; Redis refuses writes while it "
            "answers but will not write (read-only, out of memory). Either way writes stay in this "
            "replica and are journalled for replay.",
            [
                (
                    f"max by (instance) (session_exporter_store_fallback_active{{{SEL}}})"
                    " + 2 * max by (instance) "
                    f"(session_exporter_store_writes_refused{{{SEL}}})",
                    "{{instance}}",
                )
            ],
            unit="none",
            mappings=value_map(
                {
                    0: ("redis", "green"),
                    1: ("memory fallback", "red"),
                    2: ("refusing writes", "red"),
                }
            ),
            width=4,
        ),
        stat_panel(
            "Memory tier coherence",
            "Whether Redis invalidation tracking keeps the memory tier coherent with other "
            "replicas.",
            [(f"session_exporter_coherence_tracking_active{{{SEL}}}", "{{instance}}")],
            unit="none",
            mappings=value_map({0: ("not tracking", "yellow"), 1: ("tracking", "green")}),
            width=4,
        ),
        stat_panel(
            "Manager health",
            "Health score of each session manager (worst selected replica).",
            [
                (
                    "min by (component) "
                    f'(session_exporter_health_score{{component=~"session|figma", {SEL}}})',
                    "{{component}}",
                )
            ],
            unit="none",
            thresholds=steps(*HEALTH_STEPS),
            width=6,
        ),
        stat_panel(
            "Manager status",
            "Health status of each session manager; disabled when its service is not configured.",
            [
                (
                    f"max by (component) ({status_code('session|figma', 'instance, component')})",
                    "{{component}}",
                )
            ],
            unit="none",
            mappings=value_map(STATUS_MAPPINGS),
            width=6,
        ),
        timeseries_panel(
            "Replay backlog",
            "Writes journalled during a Redis outage and not yet replayed, against the journal's "
            "bound. Writes beyond the bound are dropped.",
            [
                (f"session_exporter_store_replay_pending{{{SEL}}}", "{{instance}} pending"),
                (f"session_exporter_store_replay_max{{{SEL}}}", "{{instance}} bound"),
            ],
            unit="short",
            width=8,
        ),
        timeseries_panel(
            "Failover and replay",
            "Switches to memory fallback, journalled writes replayed to Redis, sessions written "
            "back to a Redis that restarted empty, and writes dropped (always 0: a full journal "
            "refuses writes with 503 instead) per second.",
            [
                (
                    _rate("session_exporter_store_failovers_total", "instance"),
                    "{{instance}} failovers",
                ),
                (
                    _rate("session_exporter_store_replayed_total", "instance"),
                    "{{instance}} replayed",
                ),
                (
                    _rate("session_exporter_store_replay_dropped_total", "instance"),
                    "{{instance}} dropped",
                ),
                (
                    _rate("session_exporter_store_reseeded_total", "instance"),
                    "{{instance}} re-seeded",
                ),
            ],
            unit="ops",
            width=8,
        ),
        timeseries_panel(
            "Memory tier fill",
            "Entries and bytes held by the in-process memory tier as a share of their limits; "
            "above 90 % it evicts and the health score drops.",
            [
                (
                    ratio(
                        f"session_exporter_memory_tier_entries{{{SEL}}}",
                        f"session_exporter_memory_tier_max_entries{{{SEL}}}",
                    ),
                    "{{instance}} entries",
                ),
                (
                    ratio(
                        f"session_exporter_memory_tier_bytes{{{SEL}}}",
                        f"session_exporter_memory_tier_max_bytes{{{SEL}}}",
                    ),
                    "{{instance}} bytes",
                ),
            ],
            unit="percentunit",
            thresholds=steps(("green", None), ("red", 0.9)),
            maximum=1,
            width=8,
        ),
        *journal(),
        *fleet(),
        timeseries_panel(
            "Memory tier entries",
            "Entries held by the memory tier and its entry limit.",
            [
                (f"session_exporter_memory_tier_entries{{{SEL}}}", "{{instance}} entries"),
                (f"session_exporter_memory_tier_max_entries{{{SEL}}}", "{{instance}} limit"),
            ],
            unit="short",
        ),
        timeseries_panel(
            "Memory tier bytes",
            "Encoded bytes held by the memory tier and its byte limit.",
            [
                (f"session_exporter_memory_tier_bytes{{{SEL}}}", "{{instance}} bytes"),
                (f"session_exporter_memory_tier_max_bytes{{{SEL}}}", "{{instance}} limit"),
            ],
            unit="bytes",
        ),
    ]


def journal() -> list[PanelBuilder]:
    """The outage journal's disk (--journal-dir): whether it takes writes, what it refused, and
    damaged journal files set aside."""
    return [
        stat_panel(
            "Outage journal",
            "Whether each replica's outage journal takes writes (a full, failing or read-only disk "
            "refuses them: during a Redis outage writes then get 503), and whether damaged journal "
            "files are set aside in its directory (their intact writes replayed, the damaged ones "
            "lost; remove the files once inspected).",
            [
                (
                    f"max by (instance) (1 - session_exporter_store_journal_writable{{{SEL}}})"
                    " + 2 * max by (instance) "
                    f"(session_exporter_store_journal_corrupt_files{{{SEL}}} > bool 0)",
                    "{{instance}}",
                )
            ],
            unit="none",
            mappings=value_map(
                {
                    0: ("takes writes", "green"),
                    1: ("disk refuses writes", "red"),
                    2: ("damaged files set aside", "orange"),
                    3: ("refuses writes; damaged files", "red"),
                }
            ),
            width=8,
        ),
        timeseries_panel(
            "Outage journal writes refused",
            "Writes the outage journal's disk refused, per second by reason (no_space, read_only, "
            "io_error, other): each was answered 503, never acknowledged.",
            [
                (
                    _rate(
                        "session_exporter_store_journal_write_failures_total", "instance, reason"
                    ),
                    "{{instance}} {{reason}}",
                )
            ],
            unit="ops",
            width=8,
        ),
        stat_panel(
            "Damaged journal records",
            "Bytes of damaged records each replica found in its outage journal at start-up: "
            "acknowledged writes that could not be replayed.",
            [(f"session_exporter_store_journal_corrupt_bytes{{{SEL}}}", "{{instance}}")],
            unit="bytes",
            thresholds=steps(("green", None), ("red", 1)),
            width=8,
        ),
    ]


def fleet() -> list[PanelBuilder]:
    """The replicas sharing one Redis (docs/recovery.md): whether a miss is a final 404, how
    many others each hears from, and how far each host's clock is from Redis's."""
    return [
        stat_panel(
            "Misses final",
            "Whether each replica may answer 404 for a session Redis does not hold: every replica "
            "has replayed its outage journal and re-seeded into Redis's current data (else such "
            "misses answer 503 + Retry-After until they have).",
            [(f"session_exporter_store_fleet_settled{{{SEL}}}", "{{instance}}")],
            unit="none",
            mappings=value_map({0: ("503 on misses", "orange"), 1: ("final", "green")}),
            width=8,
        ),
        stat_panel(
            "Replicas heard from",
            "Other replicas each one has heard from recently (their records in Redis): all of "
            "them must have replayed before a miss is final. A crashed replica is forgotten 10 s "
            "after its last report.",
            [(f"session_exporter_store_fleet_members{{{SEL}}}", "{{instance}}")],
            unit="none",
            width=8,
        ),
        timeseries_panel(
            "Host clock offset from Redis",
            "Each host's wall clock minus Redis's. Expiry and write order follow Redis's clock, "
            "so an offset changes neither; it shows a host whose clock needs fixing (only the "
            "times it displays are off).",
            [(f"session_exporter_store_clock_offset_seconds{{{SEL}}}", "{{instance}}")],
            unit="s",
            minimum=None,
            width=8,
        ),
    ]


def web_server() -> list[PanelBuilder]:
    """Connections and the web configuration: slow or greedy clients, a bad reload."""
    return [
        timeseries_panel(
            "HTTP connections",
            "Open connections per replica against the cap (--web-max-connections): at the cap "
            "the address holding the most gives one up.",
            [
                (f"session_exporter_http_connections{{{SEL}}}", "{{instance}} open"),
                (f"session_exporter_http_max_connections{{{SEL}}}", "{{instance}} cap"),
            ],
            unit="none",
            width=8,
        ),
        timeseries_panel(
            "HTTP connections dropped",
            "Connections closed or refused per second, by reason: a request head or body too "
            "slow (header_timeout, body_timeout) or a client or the whole server at its cap.",
            [
                (
                    _rate("session_exporter_http_connections_dropped_total", "instance, reason"),
                    "{{instance}} {{reason}}",
                )
            ],
            unit="ops",
            width=8,
        ),
        stat_panel(
            "Web configuration",
            "Whether the last reload of --web-config-file succeeded; a file that could not be "
            "read or validated leaves the last good one (TLS, logins) in force.",
            [(f"session_exporter_web_config_last_reload_successful{{{SEL}}}", "{{instance}}")],
            unit="none",
            mappings=value_map({0: ("last reload refused", "red"), 1: ("loaded", "green")}),
            width=8,
        ),
    ]


def performance(c: MixinConfig) -> list[PanelBuilder]:
    latency = _latency_steps(c)
    metric = "session_exporter_operation_duration_seconds"
    panels: list[PanelBuilder] = [
        timeseries_panel(
            "Latency percentiles by manager",
            "p50, p95 and p99 of operation duration per manager over 5 minutes (selected replicas "
            "together). The dashed lines are the 100 ms slow threshold and 500 ms.",
            [
                (
                    defined(f"histogram_quantile({q}, sum by (manager, le) ({BUCKETS}{{{SEL}}}))"),
                    f"{{{{manager}}}} {name}",
                )
                for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
            ],
            unit="s",
            thresholds=latency,
            table_legend=True,
        ),
        timeseries_panel(
            "Latency percentiles by operation",
            "p50, p95 and p99 of each operation's duration (the JSON API's per-operation "
            "percentiles, over the dashboard's rate interval instead of the last 100 operations).",
            [
                (
                    _quantile(q, metric, "manager, operation"),
                    f"{{{{manager}}}} {{{{operation}}}} {name}",
                )
                for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
            ],
            unit="s",
            thresholds=latency,
            table_legend=True,
        ),
        timeseries_panel(
            "Average latency by manager",
            "Mean operation duration (sum / count) per manager: the seed's average response time.",
            [
                (
                    ratio(_rate(metric + "_sum", "manager"), _rate(metric + "_count", "manager")),
                    "{{manager}}",
                )
            ],
            unit="s",
            thresholds=latency,
            width=8,
        ),
        timeseries_panel(
            "p95 latency by replica",
            "p95 per replica and manager (recording rule), to spot one slow replica.",
            [
                (
                    f"instance_manager:session_exporter_operation_duration_seconds:p95_rate5m{{{SEL}}}",
                    "{{instance}} {{manager}}",
                )
            ],
            unit="s",
            thresholds=latency,
            width=8,
        ),
        timeseries_panel(
            "p50 / p99 by replica",
            "Median and 99th percentile per replica and manager (recording rules).",
            [
                (
                    f"instance_manager:session_exporter_operation_duration_seconds:p50_rate5m{{{SEL}}}",
                    "{{instance}} {{manager}} p50",
                ),
                (
                    f"instance_manager:session_exporter_operation_duration_seconds:p99_rate5m{{{SEL}}}",
                    "{{instance}} {{manager}} p99",
                ),
            ],
            unit="s",
            thresholds=latency,
            width=8,
        ),
        timeseries_panel(
            "Throughput by operation",
            "Operations per second by manager and operation.",
            [(_rate(metric + "_count", "manager, operation"), "{{manager}} {{operation}}")],
            unit="ops",
            table_legend=True,
        ),
        timeseries_panel(
            "Slow operations",
            "Operations per second slower than the slow threshold (--slow-threshold-ms, 100 ms by "
            "default). The JSON API lists the recent ones with context.",
            [
                (
                    _rate("session_exporter_slow_operations_total", "manager, operation"),
                    "{{manager}} {{operation}}",
                )
            ],
            unit="ops",
            bars=True,
        ),
        timeseries_panel(
            "Errors by type",
            "Failed operations per second by manager and error type. not_found and invalid are the "
            "caller's doing and are left out of the error ratio.",
            [
                (
                    _rate("session_exporter_operation_errors_total", "manager, error"),
                    "{{manager}} {{error}}",
                )
            ],
            unit="ops",
            bars=True,
        ),
        timeseries_panel(
            "Error ratio by manager",
            "Share of operations failing for server-side reasons over 5 minutes.",
            [
                (
                    ratio(
                        f"sum by (manager) ({ERRORS}{{{SEL}}})",
                        f"sum by (manager) ({OPS}{{{SEL}}})",
                    ),
                    "{{manager}}",
                )
            ],
            unit="percentunit",
            thresholds=_error_steps(c),
        ),
        timeseries_panel(
            "Session lifecycle",
            "Sessions created, read, replaced, deleted and expired per second (expiries are "
            "counted once across replicas).",
            [
                (
                    _rate(f"session_exporter_sessions_{kind}_total", "instance"),
                    f"{{{{instance}}}} {kind}",
                )
                for kind in ("created", "retrieved", "updated", "deleted", "expired")
            ],
            unit="ops",
            table_legend=True,
        ),
        timeseries_panel(
            "HTTP requests by route and status",
            "Requests per second served by the exporter's HTTP API, by route template and status.",
            [
                (
                    _rate("session_exporter_http_requests_total", "route, method, status"),
                    "{{method}} {{route}} {{status}}",
                )
            ],
            unit="reqps",
            table_legend=True,
        ),
        timeseries_panel(
            "HTTP p95 latency by route",
            "95th percentile of HTTP request duration by route template.",
            [
                (
                    _quantile(
                        0.95, "session_exporter_http_request_duration_seconds", "route, method"
                    ),
                    "{{method}} {{route}}",
                )
            ],
            unit="s",
            thresholds=latency,
            table_legend=True,
        ),
    ]
    # The first five show latency per manager: each manager against its own objective.
    return [_figma_latency(panel, c) if i < 5 else panel for i, panel in enumerate(panels)]


def cache() -> list[PanelBuilder]:
    metric = "session_exporter_cache_requests_total"
    return [
        stat_panel(
            "Cache efficiency",
            "Efficiency class per manager from the 5-minute hit ratio: excellent >= 90 %, "
            "good >= 75 %, fair >= 50 %, poor below.",
            [
                (
                    HIT_RATIO_BY_MANAGER,
                    "{{manager}}",
                )
            ],
            unit="percentunit",
            mappings=range_map(
                [
                    (0.9, 1.0, "excellent", "green"),
                    (0.75, 0.9, "good", "yellow"),
                    (0.5, 0.75, "fair", "orange"),
                    (0.0, 0.5, "poor", "red"),
                ]
            ),
            thresholds=steps(*HIT_STEPS),
            width=6,
            height=8,
        ),
        timeseries_panel(
            "Hit ratio by manager",
            "Share of lookups that hit, per manager, over 5 minutes (recording rule inputs).",
            [
                (
                    HIT_RATIO_BY_MANAGER,
                    "{{manager}}",
                )
            ],
            unit="percentunit",
            thresholds=steps(*HIT_STEPS),
            maximum=1,
            width=9,
        ),
        timeseries_panel(
            "Hit ratio by tier and manager",
            "Share of lookups that hit in each tier: memory (in-process) and Redis.",
            [
                (
                    ratio(_rate(metric, "manager, tier", HIT), _rate(metric, "manager, tier")),
                    "{{manager}} {{tier}}",
                )
            ],
            unit="percentunit",
            thresholds=steps(*HIT_STEPS),
            maximum=1,
            width=9,
        ),
        timeseries_panel(
            "Lookups by tier and result",
            "Cache lookups per second by manager, tier and result.",
            [(_rate(metric, "manager, tier, result"), "{{manager}} {{tier}} {{result}}")],
            unit="ops",
            width=8,
        ),
        timeseries_panel(
            "Evictions",
            "Entries evicted per second to keep the memory tier within its entry and byte limits.",
            [(_rate("session_exporter_cache_evictions_total", "tier"), "{{tier}}")],
            unit="ops",
            bars=True,
            width=8,
        ),
        timeseries_panel(
            "Invalidations by reason",
            "Memory-tier entries dropped per second because they may be stale: changed by another "
            "replica (remote), Redis flushed, tracking lost, or cleared by an operator.",
            [(_rate("session_exporter_cache_invalidations_total", "reason"), "{{reason}}")],
            unit="ops",
            bars=True,
            width=8,
        ),
        *figma_cache(),
    ]


def figma_cache() -> list[PanelBuilder]:
    """The Figma cache's revalidation with /meta: what it found, saved and served stale."""
    return [
        timeseries_panel(
            "Figma revalidations by result",
            "Expired Figma copies checked with /meta per second: unchanged (kept, no download), "
            "changed or failed (downloaded again). /api/session-metrics/cache-stats turns these "
            "into recommendations.",
            [
                (
                    _rate("session_exporter_figma_cache_revalidations_total", "result"),
                    "{{result}}",
                )
            ],
            unit="ops",
            bars=True,
            width=8,
        ),
        timeseries_panel(
            "Figma downloads avoided and stale answers",
            "Full downloads (files, nodes, renders) a fixed-TTL cache would have made, avoided "
            "per second; copies served past their TTL (while revalidating, or holding back while "
            "Figma's rate limits are short).",
            [
                (
                    _rate("session_exporter_figma_cache_downloads_avoided_total", "instance"),
                    "{{instance}} avoided",
                ),
                (
                    _rate("session_exporter_figma_cache_stale_served_total", "reason"),
                    "stale: {{reason}}",
                ),
            ],
            unit="ops",
            width=8,
        ),
        timeseries_panel(
            "Figma bytes saved",
            "Bytes per second revalidation kept from being downloaded from Figma again.",
            [
                (
                    _rate("session_exporter_figma_cache_saved_bytes_total", "instance"),
                    "{{instance}}",
                )
            ],
            unit="Bps",
            width=8,
        ),
    ]


def health() -> list[PanelBuilder]:
    upstream = "session_exporter_upstream_requests_total"
    return [
        timeseries_panel(
            "Health score over time",
            "Health score per component (session manager, Figma manager, overall), worst selected "
            "replica. Dashed lines at 40, 60 and 80 separate critical, poor, degraded and healthy.",
            [(f"min by (component) (session_exporter_health_score{{{SEL}}})", "{{component}}")],
            unit="none",
            thresholds=steps(*HEALTH_STEPS),
            maximum=100,
        ),
        state_panel(
            "Health status by component",
            "Status per component over time: healthy, degraded, poor, critical, or disabled when "
            "its service is not configured.",
            [(f"max by (component) ({status_code('.+', 'instance, component')})", "{{component}}")],
            mappings=value_map(STATUS_MAPPINGS),
        ),
        state_panel(
            "Active health issues",
            "Issues behind the health score while they are present (code per component); "
            "/api/session-metrics/health-check gives their values and thresholds.",
            [
                (
                    f"max by (component, code) (session_exporter_health_issues{{{SEL}}}) > 0",
                    "{{component}}: {{code}}",
                )
            ],
            mappings=value_map({1: ("active", "red")}),
        ),
        state_panel(
            "Upstream availability",
            "Last probe result of each service per replica: up, down, or disabled when not "
            "configured.",
            [
                (
                    # A disabled service exports no upstream_up: its lane comes from enabled == 0.
                    f"session_exporter_upstream_up{{{SEL}}} or on (job, instance, service) "
                    f"(session_exporter_upstream_enabled{{{SEL}}} == 0) + 2",
                    "{{instance}} {{service}}",
                )
            ],
            mappings=value_map({0: ("down", "red"), 1: ("up", "green"), 2: ("disabled", "text")}),
        ),
        timeseries_panel(
            "Probe duration",
            "Duration of the last availability probe of each service.",
            [
                (
                    f"max by (service) (session_exporter_upstream_probe_duration_seconds{{{SEL}}})",
                    "{{service}}",
                )
            ],
            unit="s",
            width=8,
        ),
        timeseries_panel(
            "Probe failures by reason",
            "Failed availability probes per second by service and reason (timeout, connection, "
            "auth, status, protocol, error).",
            [
                (
                    _rate("session_exporter_upstream_probe_failures_total", "service, reason"),
                    "{{service}} {{reason}}",
                )
            ],
            unit="ops",
            bars=True,
            width=8,
        ),
        timeseries_panel(
            "Upstream success ratio",
            "Share of Figma API and MCP requests answered with 2xx.",
            [
                (
                    ratio(_rate(upstream, "service", OK_2XX), _rate(upstream, "service")),
                    "{{service}}",
                )
            ],
            unit="percentunit",
            thresholds=steps(("red", None), ("yellow", 0.95), ("green", 0.99)),
            maximum=1,
            width=8,
        ),
        timeseries_panel(
            "Figma API requests by status",
            "Figma REST API requests per second by endpoint and status class (2xx, 4xx, 429, 5xx, "
            "timeout, error).",
            [
                (
                    _rate(upstream, "endpoint, status", 'service="figma_api"'),
                    "{{endpoint}} {{status}}",
                )
            ],
            unit="reqps",
            table_legend=True,
        ),
        timeseries_panel(
            "MCP requests by status",
            "MCP server calls per second by tool/endpoint and status class.",
            [
                (
                    _rate(upstream, "endpoint, status", 'service="mcp_server"'),
                    "{{endpoint}} {{status}}",
                )
            ],
            unit="reqps",
            table_legend=True,
        ),
        timeseries_panel(
            "Upstream request latency",
            "95th percentile of upstream request duration by service and endpoint.",
            [
                (
                    _quantile(
                        0.95,
                        "session_exporter_upstream_request_duration_seconds",
                        "service, endpoint",
                    ),
                    "{{service}} {{endpoint}}",
                )
            ],
            unit="s",
            table_legend=True,
        ),
        timeseries_panel(
            "Screenshot duration",
            "p50 and p95 of screenshot capture duration by source (Figma API or MCP), cache hits "
            "included.",
            [
                (
                    _quantile(q, "session_exporter_screenshot_duration_seconds", "source"),
                    f"{{{{source}}}} {name}",
                )
                for q, name in ((0.5, "p50"), (0.95, "p95"))
            ],
            unit="s",
        ),
        timeseries_panel(
            "Screenshots by outcome",
            "Screenshot requests per second by source and outcome (success, cached, error).",
            [
                (
                    _rate("session_exporter_screenshots_total", "source, outcome"),
                    "{{source}} {{outcome}}",
                )
            ],
            unit="reqps",
            bars=True,
            width=8,
        ),
        timeseries_panel(
            "Screenshot success ratio",
            "Share of screenshot requests that produced an image (captured or cached).",
            [
                (
                    ratio(
                        _rate("session_exporter_screenshots_total", "source", NOT_ERROR),
                        _rate("session_exporter_screenshots_total", "source"),
                    ),
                    "{{source}}",
                )
            ],
            unit="percentunit",
            thresholds=steps(("red", None), ("yellow", 0.95), ("green", 0.99)),
            maximum=1,
            width=8,
        ),
        timeseries_panel(
            "Screenshot size",
            "Average and p95 size of captured screenshots by source.",
            [
                (
                    ratio(
                        _rate("session_exporter_screenshot_size_bytes_sum", "source"),
                        _rate("session_exporter_screenshot_size_bytes_count", "source"),
                    ),
                    "{{source}} average",
                ),
                (
                    _quantile(0.95, "session_exporter_screenshot_size_bytes", "source"),
                    "{{source}} p95",
                ),
            ],
            unit="bytes",
            width=8,
        ),
    ]


def realtime() -> list[PanelBuilder]:
    # The seed's live view: the shortest windows Grafana's scrape interval allows, last 15 minutes.
    return [
        timeseries_panel(
            "Operations / s (live)",
            "Operations per second per manager over the shortest reliable window.",
            [
                (
                    _rate("session_exporter_operation_duration_seconds_count", "manager"),
                    "{{manager}}",
                )
            ],
            unit="ops",
            width=8,
            time_from=LIVE,
        ),
        timeseries_panel(
            "Session activity",
            "Sessions created and read per second over the shortest reliable window.",
            [
                (
                    _rate("session_exporter_sessions_created_total", "instance"),
                    "{{instance}} created",
                ),
                (
                    _rate("session_exporter_sessions_retrieved_total", "instance"),
                    "{{instance}} read",
                ),
            ],
            unit="ops",
            width=8,
            time_from=LIVE,
        ),
        timeseries_panel(
            "Active sessions",
            "Live sessions across replicas, as each replica reports it.",
            [(f"session_exporter_sessions_active{{{SEL}}}", "{{instance}}")],
            unit="short",
            width=8,
            time_from=LIVE,
        ),
        timeseries_panel(
            "SSE clients",
            "Connected Server-Sent Events clients per replica and the configured limit "
            "(--sse-max-clients); at the limit new streams are refused.",
            [
                (f"session_exporter_sse_clients{{{SEL}}}", "{{instance}} clients"),
                (f"session_exporter_sse_max_clients{{{SEL}}}", "{{instance}} limit"),
            ],
            unit="short",
            width=8,
            time_from=LIVE,
        ),
        timeseries_panel(
            "Events by type",
            "Events recorded in the event log per rate interval by type (failover, failback, slow "
            "operations, upstream changes, cache clears...). The SSE stream carries each one.",
            [
                (
                    f"sum by (type) (increase(session_exporter_events_total{{{SEL}}}[{RATE}]))",
                    "{{type}}",
                )
            ],
            unit="short",
            bars=True,
            width=8,
            time_from=LIVE,
        ),
        timeseries_panel(
            "Event stream failures",
            "Failed writes or reads of the shared Redis event stream per second; events then stay "
            "in this replica's memory only, so other replicas' streams miss them.",
            [(_rate("session_exporter_event_stream_failures_total", "instance"), "{{instance}}")],
            unit="ops",
            bars=True,
            width=8,
            time_from=LIVE,
        ),
    ]


EXPORTER_URL = "http://127.0.0.1:9464"  # the compose stack's published port
# The seed's interactive controls: Grafana refreshes every 5 s; these open the exporter itself.
# (Clearing the cache is a POST with the admin token: the landing page shows the command.)
EXPORTER_LINKS = (
    ("Exporter", "/", "the landing page: version, health, every endpoint"),
    ("Health check now", "/api/session-metrics/health-check?refresh=true", "run the checks now"),
    ("Performance", "/api/session-metrics/performance", "window percentiles, slow operations"),
    ("Cache stats", "/api/session-metrics/cache-stats", "hit rates and efficiency class"),
    ("Persistence", "/api/session-metrics/persistence", "Redis, replay journal, memory tier"),
)


def exporter_links() -> list[db.DashboardLink]:
    return [
        db.DashboardLink(title)
        .type(dm.DashboardLinkType.LINK)
        .url("${exporter_url}" + path)
        .tooltip(tooltip)
        .icon("external link")
        .target_blank(True)
        .as_dropdown(False)
        .include_vars(False)
        .keep_time(False)
        .tags([])
        for title, path, tooltip in EXPORTER_LINKS
    ]


def build(config: MixinConfig | None = None) -> db.Dashboard:
    config = config or load_config()
    dashboard = (
        db.Dashboard(TITLE)
        .uid(UID)
        .description(
            "Sessions, caches, upstreams and health of session-metrics-exporter: the seed's "
            "Session Management section with its Performance, Cache, Health and Real-time tabs."
        )
        .tags(["session-metrics-exporter", "sessions", "figma"])
        .refresh("5s")  # the seed's real-time update interval
        .time("now-1h", "now")
        .timezone("browser")
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            db.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .current(dm.VariableOption(text="Prometheus", value="prometheus"))
        )
        .with_variable(
            db.QueryVariable("job")
            .label("Job")
            .description("Prometheus jobs scraping the exporter; each is one stack.")
            .datasource(DATASOURCE)
            .query("label_values(session_exporter_build_info, job)")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.NATURAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".+")
            .current(dm.VariableOption(text=[config.job], value=[config.job]))
        )
        .with_variable(
            db.QueryVariable("instance")
            .label("Instance")
            .description("Exporter replicas to show; All aggregates the fleet.")
            .datasource(DATASOURCE)
            .query('label_values(session_exporter_build_info{job=~"$job"}, instance)')
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.NATURAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".+")
            .current(dm.VariableOption(text=["All"], value=["$__all"]))
        )
        .with_variable(
            db.TextBoxVariable("exporter_url")
            .label("Exporter URL")
            .description("Where the links above open the exporter's own pages and JSON API.")
            .default_value(EXPORTER_URL)
        )
    )
    for link in exporter_links():
        dashboard = dashboard.link(link)
    for title, panels in (
        ("Overview", overview(config)),
        ("SLOs", slo_row.panels(config)),
        ("Persistence", persistence()),
        ("Performance", performance(config)),
        ("Cache", cache()),
        ("Health", health()),
        ("Real-time", realtime()),
        ("Web server", web_server()),
    ):
        dashboard = dashboard.with_row(db.Row(title))
        for panel in panels:
            dashboard = dashboard.with_panel(panel)
    return dashboard
