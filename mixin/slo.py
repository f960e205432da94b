"""SLO rules in Sloth's shape: SLI recordings per window, meta recordings, burn-rate alerts.

Each SLO of `mixin/config.yml` gets the recording rules Sloth generates, under the same names and
labels (`sloth_service` is the job, `sloth_slo` the SLO's slug, `sloth_id` both), so SLO
dashboards made for Sloth read them; every series also carries `job`, so two stacks in one
Prometheus never record the same series:

- `slo:sli_error:ratio_rate<window>`: the share of bad requests over each window;
- `slo:sli_error:ratio_rate<period>`: its average over the period (Sloth's way: the mean of the
  shortest window's ratios, cheap where a rate over 30 days is not);
- `slo:objective:ratio`, `slo:error_budget:ratio`, `slo:time_period:days`,
  `slo:current_burn_rate:ratio` (over the shortest window), `slo:period_burn_rate:ratio`,
  `slo:period_error_budget_remaining:ratio` and `sloth_slo_info`.

Two differences, both on purpose: a ratio over no traffic is absent, not NaN (0 / 0), as in the
rest of the rules; and each window pair of a burn-rate alert is its own rule whose value is the
burn rate over the long window, so an alert's labels never change while it fires (Sloth's single
`or` expression swaps its `sloth_window` label when the other pair takes over, which resolves the
alert and fires it again).

    >>> from mixin.config import load
    >>> [g.name for g in recording_groups(load())]
    ['session_exporter_slo_sli', 'session_exporter_slo_meta']
"""

from __future__ import annotations

from typing import Any

from prometheus_client.utils import floatToGoString

from mixin.config import PREFIX, BurnAlert, BurnWindow, MixinConfig, Slo
from mixin.durations import seconds, spoken
from mixin.groups import Group
from mixin.record_names import (
    BUDGET_REMAINING,
    CURRENT_BURN_RATE,
    ERROR_BUDGET,
    OBJECTIVE,
    PERIOD_BURN_RATE,
    SLO_INFO,
    TIME_PERIOD_DAYS,
    sli,
)

REQUESTS = "session_exporter_http_requests_total"
DURATION = "session_exporter_http_request_duration_seconds"
MATCH = ("job", "sloth_id", "sloth_service", "sloth_slo")
SLI_GROUP, META_GROUP, ALERT_GROUP = (
    "session_exporter_slo_sli",
    "session_exporter_slo_meta",
    "session_exporter_slo_burn",
)


def sloth_id(config: MixinConfig, slo: Slo) -> str:
    return f"{config.job}-{slo.slug}"


def labels(config: MixinConfig, slo: Slo) -> dict[str, str]:
    """The labels Sloth puts on every SLO series (job comes from the expression)."""
    return {"sloth_id": sloth_id(config, slo), "sloth_service": config.job, "sloth_slo": slo.slug}


def selector(config: MixinConfig, slo: Slo) -> str:
    return f'{{{config.selector}, sloth_id="{sloth_id(config, slo)}"}}'


def alert_name(slo: Slo, burn: BurnAlert) -> str:
    return f"{PREFIX}{slo.name}{burn.name}"


def _percent(value: float) -> str:
    return f"{value * 100:g} %"


def _routes(slo: Slo) -> str:
    """A matcher for the SLO's route templates: their braces are literal in RE2 (no repeat)."""
    return f'route=~"{"|".join(slo.routes)}"'


# -- SLI recordings -----------------------------------------------------------------------------


def _requests(config: MixinConfig, slo: Slo, window: str, *matchers: str) -> str:
    chosen = ", ".join((config.selector, _routes(slo), *matchers))
    if slo.latency_seconds is None:
        metric = REQUESTS
    elif matchers:
        metric = f"{DURATION}_bucket"
    else:
        metric = f"{DURATION}_count"
    return f"sum by (job) (rate({metric}{{{chosen}}}[{window}]))"


def sli_expr(config: MixinConfig, slo: Slo, window: str) -> str:
    """Bad requests / all requests over `window`; absent while there are none."""
    total = _requests(config, slo, window)
    if slo.latency_seconds is None:
        # 5xx only: a 4xx is the client's (store_busy and store_full are 503 and 507).
        errors = _requests(config, slo, window, 'status=~"5.."')
        return f"{errors} / ({total} > 0)"
    bound = floatToGoString(slo.latency_seconds)  # type: ignore[no-untyped-call]  # as exposed
    fast = _requests(config, slo, window, f'le="{bound}"')
    return f"1 - {fast} / ({total} > 0)"


def _sli_rules(config: MixinConfig, slo: Slo) -> list[dict[str, Any]]:
    rules = [
        {
            "record": sli(window),
            "expr": sli_expr(config, slo, window),
            "labels": {**labels(config, slo), "sloth_window": window},
        }
        for window in config.slo.windows
    ]
    shortest = min(config.slo.windows, key=seconds)
    period, sel = config.slo.period, selector(config, slo)
    rules.append(
        {
            "record": sli(period),
            "expr": (
                f"sum_over_time({sli(shortest)}{sel}[{period}]) / ignoring (sloth_window) "
                f"count_over_time({sli(shortest)}{sel}[{period}])"
            ),
            "labels": {**labels(config, slo), "sloth_window": period},
        }
    )
    return rules


# -- meta recordings ----------------------------------------------------------------------------


def _meta_rules(config: MixinConfig, slo: Slo) -> list[dict[str, Any]]:
    sel, constant = selector(config, slo), {**labels(config, slo), "job": config.job}
    per_budget = f" / on ({', '.join(MATCH)}) group_left {ERROR_BUDGET}{sel}"
    shortest = min(config.slo.windows, key=seconds)
    days = seconds(config.slo.period) / 86400
    return [
        {"record": OBJECTIVE, "expr": f"vector({slo.objective:g})", "labels": constant},
        {"record": ERROR_BUDGET, "expr": f"vector({slo.budget:g})", "labels": constant},
        {"record": TIME_PERIOD_DAYS, "expr": f"vector({days:g})", "labels": constant},
        {
            "record": CURRENT_BURN_RATE,
            "expr": f"{sli(shortest)}{sel}{per_budget}",
            "labels": labels(config, slo),
        },
        {
            "record": PERIOD_BURN_RATE,
            "expr": f"{sli(config.slo.period)}{sel}{per_budget}",
            "labels": labels(config, slo),
        },
        {
            "record": BUDGET_REMAINING,
            "expr": f"1 - {PERIOD_BURN_RATE}{sel}",
            "labels": labels(config, slo),
        },
        {
            "record": SLO_INFO,
            "expr": "vector(1)",
            "labels": {**constant, "sloth_objective": f"{slo.objective * 100:g}"},
        },
    ]


def recording_groups(config: MixinConfig) -> list[Group]:
    sli, meta = Group(SLI_GROUP), Group(META_GROUP)
    for slo in config.slo.objectives:
        sli.rules += _sli_rules(config, slo)
        meta.rules += _meta_rules(config, slo)
    return [sli, meta]


# -- burn-rate alerts ---------------------------------------------------------------------------


def burn_expr(config: MixinConfig, slo: Slo, burn: BurnAlert, pair: BurnWindow) -> str:
    """The burn rate over the long window, while both windows (and the reset window) are over
    the pair's burn rate: its value says how fast the budget burns."""
    sel, budget = selector(config, slo), f"{slo.budget:g}"
    terms = [
        f"{sli(pair.long)}{sel} / {budget} > {pair.burn_rate:g}",
        f"{sli(pair.short)}{sel} / {budget} > {pair.burn_rate:g}",
    ]
    if burn.reset_window is not None and burn.reset_window != pair.short:
        terms.append(f"{sli(burn.reset_window)}{sel} / {budget} > 1")
    return "\nand ignoring (sloth_window) ".join(terms)


def _why(config: MixinConfig, hold: str, burn: BurnAlert, pair: BurnWindow) -> str:
    share = pair.burn_rate * seconds(pair.long) / seconds(config.slo.period)
    text = (
        f"{pair.burn_rate:g}x the budget over {pair.long} spends {_percent(round(share, 4))} of "
        f"the {config.slo.period} budget; the {pair.short} window stops it within {pair.short} "
        "of the end"
    )
    if burn.reset_window is not None and burn.reset_window != pair.short:
        text += f" (and the {burn.reset_window} window within {burn.reset_window})"
    if seconds(hold) == 0:
        return text + ". No `for:`: the windows are the persistence."
    return text + f". `for: {hold}` (mixin/config.yml)."


def _burn_rule(
    config: MixinConfig, slo: Slo, burn: BurnAlert, pair: BurnWindow
) -> tuple[dict[str, Any], str]:
    name = alert_name(slo, burn)
    setting = config.alert(name.removeprefix(PREFIX))
    tier = "page" if setting.severity == "critical" else "ticket"
    what = "SLI" if slo.latency_seconds is None else "latency SLI"
    rule = {
        "alert": name,
        "expr": burn_expr(config, slo, burn, pair),
        "for": setting.hold,
        # long and short tell the pairs apart (the rule's value is the burn rate over `long`).
        "labels": {
            "severity": setting.severity,
            "sloth_severity": tier,
            "long": pair.long,
            "short": pair.short,
        },
        "annotations": {
            "summary": (
                f"The {slo.slug} SLO burns its error budget over {pair.burn_rate:g}x too fast "
                f"({pair.long} and {pair.short})."
            ),
            "description": (
                f"The {slo.slug} SLO of job {{{{ $labels.job }}}} ({_percent(slo.objective)} of "
                f"{slo.description} over {spoken(config.slo.period)}) has burnt its error budget "
                f"{{{{ $value | humanize }}}}x as fast as it may over the last "
                f"{spoken(pair.long)}, and over {pair.burn_rate:g}x over the last "
                f"{spoken(pair.short)} too. At {pair.burn_rate:g}x the budget lasts "
                f"{spoken_days(config, pair)}. See the {what} on the dashboard's SLOs row."
            ),
            "runbook_url": config.runbook(name),
        },
    }
    return rule, _why(config, setting.hold, burn, pair)


def spoken_days(config: MixinConfig, pair: BurnWindow) -> str:
    hours = seconds(config.slo.period) / pair.burn_rate / 3600
    return f"{hours / 24:.3g} days" if hours >= 48 else f"{hours:.3g} hours"


def alert_groups(config: MixinConfig) -> list[Group]:
    group = Group(ALERT_GROUP)
    for slo in config.slo.objectives:
        for burn in config.slo.burn_alerts:
            for pair in burn.windows:
                rule, why = _burn_rule(config, slo, burn, pair)
                group.comments[len(group.rules)] = why
                group.rules.append(rule)
    return [group]
