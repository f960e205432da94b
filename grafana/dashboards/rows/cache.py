"""The Cache row: efficiency class and hit ratios per manager and tier, lookups, evictions,
invalidations, and the Figma cache's revalidation with /meta."""

from __future__ import annotations

from grafana.dashboards.panels import (
    HIT_STEPS,
    SEL,
    PanelBuilder,
    range_map,
    rate_by,
    ratio,
    stat_panel,
    steps,
    timeseries_panel,
)
from mixin.config import MixinConfig
from mixin.record_names import HITS, LOOKUPS

CACHE_REQUESTS = "session_exporter_cache_requests_total"
HIT = 'result="hit"'
# A memory miss that Redis answers is a hit; lookups are first-tier lookups (as the JSON API).
_HITS_BY_MANAGER = f"sum by (manager) ({HITS}{{{SEL}}})"
_LOOKUPS_BY_MANAGER = f"sum by (manager) ({LOOKUPS}{{{SEL}}})"
HIT_RATIO_BY_MANAGER = f"clamp_max({ratio(_HITS_BY_MANAGER, _LOOKUPS_BY_MANAGER)}, 1)"


def panels(c: MixinConfig) -> list[PanelBuilder]:
    return [
        cache_efficiency(),
        hit_ratio_by_manager(),
        hit_ratio_by_tier(),
        lookups(),
        evictions(),
        invalidations(),
        invalidation_keys(),
        figma_revalidations(),
        figma_avoided_and_stale(),
        figma_bytes_saved(),
    ]


def cache_efficiency() -> PanelBuilder:
    return stat_panel(
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
    )


def hit_ratio_by_manager() -> PanelBuilder:
    return timeseries_panel(
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
    )


def hit_ratio_by_tier() -> PanelBuilder:
    return timeseries_panel(
        "Hit ratio by tier and manager",
        "Share of lookups that hit in each tier: memory (in-process) and Redis.",
        [
            (
                ratio(
                    rate_by(CACHE_REQUESTS, "manager, tier", HIT),
                    rate_by(CACHE_REQUESTS, "manager, tier"),
                ),
                "{{manager}} {{tier}}",
            )
        ],
        unit="percentunit",
        thresholds=steps(*HIT_STEPS),
        maximum=1,
        width=9,
    )


def lookups() -> PanelBuilder:
    return timeseries_panel(
        "Lookups by tier and result",
        "Cache lookups per second by manager, tier and result.",
        [(rate_by(CACHE_REQUESTS, "manager, tier, result"), "{{manager}} {{tier}} {{result}}")],
        unit="ops",
        width=8,
    )


def evictions() -> PanelBuilder:
    return timeseries_panel(
        "Evictions",
        "Entries evicted per second to keep the memory tier within its entry and byte limits.",
        [(rate_by("session_exporter_cache_evictions_total", "tier"), "{{tier}}")],
        unit="ops",
        bars=True,
        width=8,
    )


def invalidations() -> PanelBuilder:
    return timeseries_panel(
        "Invalidations by reason",
        "Memory-tier entries dropped per second because they may be stale: changed by another "
        "replica (remote), Redis flushed, tracking lost, or cleared by an operator.",
        [(rate_by("session_exporter_cache_invalidations_total", "reason"), "{{reason}}")],
        unit="ops",
        bars=True,
        width=8,
    )


def invalidation_keys() -> PanelBuilder:
    return timeseries_panel(
        "Invalidation work",
        "Keys Redis's invalidation messages named to each replica per second, by what its memory "
        "tier did: dropped its copy, held none (absent), or checked an own write against Redis. "
        "A replica is told only of the keys it holds, so this follows what it holds, not the "
        "fleet's write rate.",
        [(rate_by("session_exporter_coherence_invalidation_keys_total", "result"), "{{result}}")],
        unit="ops",
        bars=True,
        width=8,
    )


def figma_revalidations() -> PanelBuilder:
    return timeseries_panel(
        "Figma revalidations by result",
        "Expired Figma copies checked with /meta per second: unchanged (kept, no download), "
        "changed or failed (downloaded again). /api/session-metrics/cache-stats turns these "
        "into recommendations.",
        [(rate_by("session_exporter_figma_cache_revalidations_total", "result"), "{{result}}")],
        unit="ops",
        bars=True,
        width=8,
    )


def figma_avoided_and_stale() -> PanelBuilder:
    return timeseries_panel(
        "Figma downloads avoided and stale answers",
        "Full downloads (files, nodes, renders) a fixed-TTL cache would have made, avoided "
        "per second; copies served past their TTL (while revalidating, or holding back while "
        "Figma's rate limits are short).",
        [
            (
                rate_by("session_exporter_figma_cache_downloads_avoided_total", "instance"),
                "{{instance}} avoided",
            ),
            (
                rate_by("session_exporter_figma_cache_stale_served_total", "reason"),
                "stale: {{reason}}",
            ),
        ],
        unit="ops",
        width=8,
    )


def figma_bytes_saved() -> PanelBuilder:
    return timeseries_panel(
        "Figma bytes saved",
        "Bytes per second revalidation kept from being downloaded from Figma again.",
        [(rate_by("session_exporter_figma_cache_saved_bytes_total", "instance"), "{{instance}}")],
        unit="Bps",
        width=8,
    )
