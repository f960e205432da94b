"""Small builders shared by the dashboards: queries, thresholds, mappings and panel kinds.

Every panel reads the `datasource` variable and every query filters on the `job` and `instance`
variables through `SEL`, so one dashboard serves one replica, a fleet, or one of several stacks
scraped by the same Prometheus. Panel factories set what every
panel must have (title, description, unit, legend) and leave the rest to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import gauge, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from mixin.config import MixinConfig

PanelBuilder = Builder[dm.Panel]

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The matchers every selector carries; "All" expands to `.+` (the variables' allValue).
SEL = 'job=~"$job", instance=~"$instance"'
RATE = "$__rate_interval"
RANGE = "$__range"  # the dashboard's time range: totals on stat panels


def ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator, absent (not NaN) while the denominator is 0: an idle replica."""
    return f"{numerator} / ({denominator} > 0)"


def defined(expr: str) -> str:
    """`expr` without NaN samples (a quantile over no traffic): NaN fails every comparison."""
    return f"{expr} >= 0"


def rate_by(metric: str, by: str, extra: str = "", window: str = RATE) -> str:
    """The per-second rate of `metric` summed by the `by` labels (`extra`: more matchers)."""
    matchers = f"{extra}, {SEL}" if extra else SEL
    return f"sum by ({by}) (rate({metric}{{{matchers}}}[{window}]))"


def quantile_by(q: float, metric: str, by: str, extra: str = "") -> str:
    """The histogram `metric`'s `q` quantile by the `by` labels, absent without traffic."""
    return defined(f"histogram_quantile({q}, {rate_by(metric + '_bucket', f'{by}, le', extra)})")


# Health status state set encoded as one number per series, so a panel can colour it.
STATUS_CODES = {"healthy": 1, "degraded": 2, "poor": 3, "critical": 4}  # 0 = disabled
STATUS_MAPPINGS = {
    0: ("disabled", "text"),
    1: ("healthy", "green"),
    2: ("degraded", "yellow"),
    3: ("poor", "orange"),
    4: ("critical", "red"),
}

Target = tuple[str, str]  # (PromQL expression, legend format)


def status_code(component: str, by: str) -> str:
    """PromQL giving 1 healthy .. 4 critical (0 disabled) per `by` labels for `component`."""
    terms = [
        f'{code} * max by ({by}) (session_exporter_health_status{{component=~"{component}", '
        f'status="{status}", {SEL}}})'
        for status, code in STATUS_CODES.items()
    ]
    return "\n+ ".join(terms)


def steps(*pairs: tuple[str, float | None]) -> db.ThresholdsConfig:
    """Absolute thresholds from (colour, lower bound) pairs; the first bound is None (-inf)."""
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for color, value in pairs])
    )


# Health score (0-100) and cache hit ratio bands, as docs/health.md classifies them.
HEALTH_STEPS = (("red", None), ("orange", 40.0), ("yellow", 60.0), ("green", 80.0))
HIT_STEPS = (("red", None), ("orange", 0.5), ("yellow", 0.75), ("green", 0.9))


def latency_steps(c: MixinConfig, manager: str = "session") -> db.ThresholdsConfig:
    """The manager's latency objective (mixin/config.yml): yellow above high, red above critical."""
    levels = c.latency_seconds[manager]
    return steps(("green", None), ("yellow", levels.high), ("red", levels.critical))


def error_steps(c: MixinConfig) -> db.ThresholdsConfig:
    return steps(("green", None), ("yellow", c.error_ratio.high), ("red", c.error_ratio.critical))


LatencyPanel = TypeVar("LatencyPanel", stat.Panel, timeseries.Panel)


def per_manager_latency(panel: LatencyPanel, c: MixinConfig) -> LatencyPanel:
    """The Figma manager's series coloured by its own objective (a remote API is slower)."""
    figma = dm.DynamicConfigValue(id_val="thresholds", value=latency_steps(c, "figma").build())
    return panel.override_by_regexp(".*figma.*", [figma])


def value_map(mapping: dict[int, tuple[str, str]]) -> list[dm.ValueMapping]:
    options = {
        str(value): dm.ValueMappingResult(text=text, color=color, index=index)
        for index, (value, (text, color)) in enumerate(sorted(mapping.items()))
    }
    return [dm.ValueMap(options=options)]


def range_map(ranges: Sequence[tuple[float, float, str, str]]) -> list[dm.ValueMapping]:
    """Text and colour for values in [low, high]: e.g. the cache efficiency classes."""
    return [
        dm.RangeMap(
            options=dm.DashboardRangeMapOptions(
                from_val=low, to=high, result=dm.ValueMappingResult(text=text, color=color, index=i)
            )
        )
        for i, (low, high, text, color) in enumerate(ranges)
    ]


def _queries(targets: Sequence[Target], *, instant: bool) -> list[Builder[variants.Dataquery]]:
    queries: list[Builder[variants.Dataquery]] = []
    for index, (expr, legend) in enumerate(targets):
        query = (
            prometheus.Dataquery()
            .expr(expr)
            .legend_format(legend)
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
        )
        queries.append(query.instant() if instant else query.range())
    return queries


def _legend(table: bool = False) -> cb.VizLegendOptions:
    legend = cb.VizLegendOptions().show_legend(True).placement(cm.LegendPlacement.BOTTOM)
    if table:
        return legend.display_mode(cm.LegendDisplayMode.TABLE).calcs(["lastNotNull", "max"])
    return legend.display_mode(cm.LegendDisplayMode.LIST)


def _tooltip() -> cb.VizTooltipOptions:
    return cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)


def stat_panel(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    thresholds: db.ThresholdsConfig | None = None,
    mappings: list[dm.ValueMapping] | None = None,
    width: int = 3,
    height: int = 4,
    decimals: float | None = None,
) -> stat.Panel:
    """A single value, coloured by thresholds or value mappings (instant query)."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_queries(targets, instant=True))
        .unit(unit)
        .span(width)
        .height(height)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.AUTO)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds or steps(("green", None)))
    )
    if mappings:
        panel = panel.mappings(mappings)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def gauge_panel(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    minimum: float,
    maximum: float,
    thresholds: db.ThresholdsConfig,
    width: int = 4,
    height: int = 8,
) -> gauge.Panel:
    return (
        gauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_queries(targets, instant=True))
        .unit(unit)
        .min(minimum)
        .max(maximum)
        .thresholds(thresholds)
        .show_threshold_markers(True)
        .show_threshold_labels(False)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(width)
        .height(height)
    )


def timeseries_panel(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    thresholds: db.ThresholdsConfig | None = None,
    bars: bool = False,
    minimum: float | None = 0,
    maximum: float | None = None,
    table_legend: bool = False,
    time_from: str | None = None,
) -> timeseries.Panel:
    """A graph over time; thresholds, when given, are drawn as dashed lines."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_queries(targets, instant=False))
        .unit(unit)
        .span(width)
        .height(height)
        .legend(_legend(table_legend))
        .tooltip(_tooltip())
        .line_width(1)
        .fill_opacity(40 if bars else 10)
        .draw_style(cm.GraphDrawStyle.BARS if bars else cm.GraphDrawStyle.LINE)
    )
    if minimum is not None:
        panel = panel.min(minimum)
    if maximum is not None:
        panel = panel.max(maximum)
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
        )
    if time_from is not None:
        panel = panel.time_from(time_from)
    return panel


def state_panel(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    mappings: list[dm.ValueMapping],
    width: int = 12,
    height: int = 8,
    thresholds: db.ThresholdsConfig | None = None,
) -> statetimeline.Panel:
    """States over time, one lane per series, coloured by value mappings."""
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_queries(targets, instant=False))
        .unit("none")
        .mappings(mappings)
        .thresholds(thresholds or steps(("text", None)))
        .show_value(cm.VisibilityMode.AUTO)
        .merge_values(True)
        .legend(_legend())
        .tooltip(_tooltip())
        .fill_opacity(70)
        .line_width(0)
        .span(width)
        .height(height)
    )
