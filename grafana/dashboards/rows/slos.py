"""The SLOs row: each service-level objective's SLI, remaining error budget, burn rates and the
burn-rate alerts firing, from the `slo:*` recording rules (mixin/slo.py, docs/slo.md).

The SLOs are the fleet's (one series per job and SLO, Sloth's labels): these panels filter on
`$job` only, since a replica's share of an SLO means nothing to its users.
"""

from __future__ import annotations

from grafana.dashboards.panels import (
    PanelBuilder,
    stat_panel,
    state_panel,
    steps,
    timeseries_panel,
    value_map,
)
from mixin.config import MixinConfig
from mixin.durations import seconds
from mixin.record_names import BUDGET_REMAINING, ERROR_BUDGET, OBJECTIVE, sli

JOB = 'job=~"$job"'
MATCH = "job, sloth_id, sloth_service, sloth_slo"
BUDGET_STEPS = (("red", None), ("orange", 0.0), ("yellow", 0.25), ("green", 0.5))


def burn_rate(window: str) -> str:
    """The error ratio over `window` in budgets: 1 spends the budget exactly over the period."""
    return f"{sli(window)}{{{JOB}}} / on ({MATCH}) group_left {ERROR_BUDGET}{{{JOB}}}"


def budget_remaining(c: MixinConfig) -> PanelBuilder:
    return stat_panel(
        "Error budget remaining",
        f"Share of each SLO's error budget left over the last {c.slo.period} "
        f"({BUDGET_REMAINING}): 100 % is no error at all, 0 % the objective "
        "just met, below 0 the objective missed. Red below 0, orange below 25 %, yellow below "
        "50 %.",
        [(f"{BUDGET_REMAINING}{{{JOB}}}", "{{sloth_slo}}")],
        unit="percentunit",
        thresholds=steps(*BUDGET_STEPS),
        decimals=1,
        width=8,
        height=8,
    )


def sli_against_objective(c: MixinConfig) -> PanelBuilder:
    shortest = min(c.slo.windows, key=seconds)
    objectives = ", ".join(f"{slo.slug} {slo.objective * 100:g} %" for slo in c.slo.objectives)
    return timeseries_panel(
        "SLI against the objective",
        f"Share of good requests over {shortest} per SLO (1 - {sli(shortest)}), with its "
        f"objective ({objectives}). Availability: answered without a "
        "server error (5xx; store_busy is a 503, 4xx is the client's). Latency: answered within "
        "the objective's latency.",
        [
            (f"1 - {sli(shortest)}{{{JOB}}}", "{{sloth_slo}}"),
            (f"{OBJECTIVE}{{{JOB}}}", "{{sloth_slo}} objective"),
        ],
        unit="percentunit",
        minimum=None,
        maximum=1,
        width=16,
    )


def _burn_panel(c: MixinConfig, tier: str, description: str) -> PanelBuilder:
    burn = next(b for b in c.slo.burn_alerts if b.name == tier)
    longs = [pair.long for pair in burn.windows]
    rates = sorted(pair.burn_rate for pair in burn.windows)
    colours = ("orange", "red")
    return timeseries_panel(
        f"Burn rate over {' and '.join(longs)} ({tier})",
        f"{description} Each SLO's error ratio over {' and '.join(longs)} in error budgets: "
        f"1 spends the budget exactly over {c.slo.period}. Dashed lines at "
        f"{' and '.join(f'{r:g}x' for r in rates)}, where {tier} fires (its short windows "
        "burning too).",
        [(burn_rate(window), f"{{{{sloth_slo}}}} {window}") for window in longs],
        unit="none",
        thresholds=steps(("green", None), *zip(colours[-len(rates) :], rates, strict=True)),
        width=12,
    )


def burn_rates(c: MixinConfig) -> list[PanelBuilder]:
    return [
        _burn_panel(c, "FastBurn", "How fast each SLO spends its budget, page windows."),
        _burn_panel(c, "SlowBurn", "How fast each SLO spends its budget, ticket windows."),
    ]


def firing() -> PanelBuilder:
    firing_alerts = f'ALERTS{{alertstate="firing", {JOB}, sloth_severity='
    return state_panel(
        "Burn-rate alerts",
        "Burn-rate alerts firing per SLO: page (a critical *FastBurn), ticket (a SlowBurn, or a "
        "Figma SLO's FastBurn), or none. docs/runbook.md says what to do for each.",
        [
            (
                f'max by (sloth_slo) (2 * {firing_alerts}"page"}} or {firing_alerts}"ticket"}})'
                f" or 0 * max by (sloth_slo) ({OBJECTIVE}{{{JOB}}})",
                "{{sloth_slo}}",
            )
        ],
        mappings=value_map({0: ("none", "green"), 1: ("ticket", "orange"), 2: ("page", "red")}),
        width=24,
        height=6,
    )


def panels(c: MixinConfig) -> list[PanelBuilder]:
    return [budget_remaining(c), sli_against_objective(c), *burn_rates(c), firing()]
