"""The Persistence row: Redis, the memory fallback and replay, the memory tier, per-manager
health, the outage journal's disk and the fleet of replicas sharing one Redis."""

from __future__ import annotations

from grafana.dashboards.panels import (
    HEALTH_STEPS,
    SEL,
    STATUS_MAPPINGS,
    PanelBuilder,
    rate_by,
    ratio,
    stat_panel,
    status_code,
    steps,
    timeseries_panel,
    value_map,
)
from mixin.config import MixinConfig


def panels(c: MixinConfig) -> list[PanelBuilder]:
    return [
        redis(),
        store_mode(),
        coherence(),
        manager_health(),
        manager_status(),
        replay_backlog(),
        failover_and_replay(),
        memory_tier_fill(),
        *journal_panels(),
        *fleet_panels(),
        memory_tier_entries(),
        memory_tier_bytes(),
    ]


def redis() -> PanelBuilder:
    return stat_panel(
        "Redis",
        "Whether each replica's Redis backend answers. Down with Redis configured means the "
        "memory fallback is serving.",
        [(f'session_exporter_store_backend_up{{backend="redis", {SEL}}}', "{{instance}}")],
        unit="none",
        mappings=value_map({0: ("down", "red"), 1: ("up", "green")}),
        width=4,
    )


def store_mode() -> PanelBuilder:
    return stat_panel(
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
    )


def coherence() -> PanelBuilder:
    return stat_panel(
        "Memory tier coherence",
        "Whether Redis invalidation tracking keeps the memory tier coherent with other replicas.",
        [(f"session_exporter_coherence_tracking_active{{{SEL}}}", "{{instance}}")],
        unit="none",
        mappings=value_map({0: ("not tracking", "yellow"), 1: ("tracking", "green")}),
        width=4,
    )


def manager_health() -> PanelBuilder:
    return stat_panel(
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
    )


def manager_status() -> PanelBuilder:
    return stat_panel(
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
    )


def replay_backlog() -> PanelBuilder:
    return timeseries_panel(
        "Replay backlog",
        "Writes journalled during a Redis outage and not yet replayed, against the journal's "
        "bound. Writes beyond the bound are dropped.",
        [
            (f"session_exporter_store_replay_pending{{{SEL}}}", "{{instance}} pending"),
            (f"session_exporter_store_replay_max{{{SEL}}}", "{{instance}} bound"),
        ],
        unit="short",
        width=8,
    )


def failover_and_replay() -> PanelBuilder:
    return timeseries_panel(
        "Failover and replay",
        "Switches to memory fallback, journalled writes replayed to Redis, sessions written "
        "back to a Redis that restarted empty, and writes dropped (always 0: a full journal "
        "refuses writes with 503 instead) per second.",
        [
            (
                rate_by("session_exporter_store_failovers_total", "instance"),
                "{{instance}} failovers",
            ),
            (
                rate_by("session_exporter_store_replayed_total", "instance"),
                "{{instance}} replayed",
            ),
            (
                rate_by("session_exporter_store_replay_dropped_total", "instance"),
                "{{instance}} dropped",
            ),
            (
                rate_by("session_exporter_store_reseeded_total", "instance"),
                "{{instance}} re-seeded",
            ),
        ],
        unit="ops",
        width=8,
    )


def memory_tier_fill() -> PanelBuilder:
    return timeseries_panel(
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
    )


def memory_tier_entries() -> PanelBuilder:
    return timeseries_panel(
        "Memory tier entries",
        "Entries held by the memory tier and its entry limit.",
        [
            (f"session_exporter_memory_tier_entries{{{SEL}}}", "{{instance}} entries"),
            (f"session_exporter_memory_tier_max_entries{{{SEL}}}", "{{instance}} limit"),
        ],
        unit="short",
    )


def memory_tier_bytes() -> PanelBuilder:
    return timeseries_panel(
        "Memory tier bytes",
        "Encoded bytes held by the memory tier and its byte limit.",
        [
            (f"session_exporter_memory_tier_bytes{{{SEL}}}", "{{instance}} bytes"),
            (f"session_exporter_memory_tier_max_bytes{{{SEL}}}", "{{instance}} limit"),
        ],
        unit="bytes",
    )


def journal_panels() -> list[PanelBuilder]:
    return [
        outage_journal(),
        journal_writes_refused(),
        damaged_journal_records(),
    ]


def outage_journal() -> PanelBuilder:
    return stat_panel(
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
    )


def journal_writes_refused() -> PanelBuilder:
    return timeseries_panel(
        "Outage journal writes refused",
        "Writes the outage journal's disk refused, per second by reason (no_space, read_only, "
        "io_error, other): each was answered 503, never acknowledged.",
        [
            (
                rate_by("session_exporter_store_journal_write_failures_total", "instance, reason"),
                "{{instance}} {{reason}}",
            )
        ],
        unit="ops",
        width=8,
    )


def damaged_journal_records() -> PanelBuilder:
    return stat_panel(
        "Damaged journal records",
        "Bytes of damaged records each replica found in its outage journal at start-up: "
        "acknowledged writes that could not be replayed.",
        [(f"session_exporter_store_journal_corrupt_bytes{{{SEL}}}", "{{instance}}")],
        unit="bytes",
        thresholds=steps(("green", None), ("red", 1)),
        width=8,
    )


def fleet_panels() -> list[PanelBuilder]:
    return [
        misses_final(),
        replicas_heard_from(),
        host_clock_offset(),
    ]


def misses_final() -> PanelBuilder:
    return stat_panel(
        "Misses final",
        "Whether each replica may answer 404 for a session Redis does not hold: every replica "
        "has replayed its outage journal and re-seeded into Redis's current data (else such "
        "misses answer 503 + Retry-After until they have).",
        [(f"session_exporter_store_fleet_settled{{{SEL}}}", "{{instance}}")],
        unit="none",
        mappings=value_map({0: ("503 on misses", "orange"), 1: ("final", "green")}),
        width=8,
    )


def replicas_heard_from() -> PanelBuilder:
    return stat_panel(
        "Replicas heard from",
        "Other replicas each one has heard from recently (their records in Redis): all of "
        "them must have replayed before a miss is final. A crashed replica is forgotten 10 s "
        "after its last report.",
        [(f"session_exporter_store_fleet_members{{{SEL}}}", "{{instance}}")],
        unit="none",
        width=8,
    )


def host_clock_offset() -> PanelBuilder:
    return timeseries_panel(
        "Host clock offset from Redis",
        "Each host's wall clock minus Redis's. Expiry and write order follow Redis's clock, "
        "so an offset changes neither; it shows a host whose clock needs fixing (only the "
        "times it displays are off).",
        [(f"session_exporter_store_clock_offset_seconds{{{SEL}}}", "{{instance}}")],
        unit="s",
        minimum=None,
        width=8,
    )
