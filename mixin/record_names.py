"""The names of the recording rules, declared once: the rules (`mixin/rules.py`, `mixin/slo.py`)
record them and the dashboards (`grafana/dashboards/`) query them, both from here.

Names follow Prometheus's level:metric:operation. Two levels for the operation and cache series:
`instance_manager` (one series per scraped replica and manager, what the dashboards filter by
`$job` and `$instance`) and `manager` (the whole fleet of one job, what the alerts use). The SLO
series keep Sloth's names, so dashboards made for Sloth read them.

    >>> quantile("95")
    'instance_manager:session_exporter_operation_duration_seconds:p95_rate5m'
    >>> sli("5m")
    'slo:sli_error:ratio_rate5m'
"""

from __future__ import annotations

# ---- per replica and manager ------------------------------------------------------------------

OPS = "instance_manager:session_exporter_operation_duration_seconds_count:rate5m"
ERRORS = "instance_manager:session_exporter_operation_errors:rate5m"
BUCKETS = "instance_manager:session_exporter_operation_duration_seconds_bucket:rate5m"
HITS = "instance_manager:session_exporter_cache_hits:rate5m"
LOOKUPS = "instance_manager:session_exporter_cache_lookups:rate5m"
ERROR_RATIO = "instance_manager:session_exporter_operation_error_ratio:rate5m"
HIT_RATIO = "instance_manager:session_exporter_cache_hit_ratio:rate5m"
QUANTILES = ("50", "95", "99")


def quantile(q: str) -> str:
    """The operation duration's `q`th percentile per replica and manager (q in QUANTILES)."""
    return f"instance_manager:session_exporter_operation_duration_seconds:p{q}_rate5m"


# ---- the fleet of one job, per manager --------------------------------------------------------

FLEET_OPS = "manager:session_exporter_operation_duration_seconds_count:rate5m"
FLEET_ERROR_RATIO = "manager:session_exporter_operation_error_ratio:rate5m"
FLEET_LOOKUPS = "manager:session_exporter_cache_lookups:rate5m"
FLEET_HIT_RATIO = "manager:session_exporter_cache_hit_ratio:rate5m"
FLEET_P95 = "manager:session_exporter_operation_duration_seconds:p95_rate5m"

# ---- service-level objectives (Sloth's names) -------------------------------------------------

SLI = "slo:sli_error:ratio_rate"
OBJECTIVE = "slo:objective:ratio"
ERROR_BUDGET = "slo:error_budget:ratio"
TIME_PERIOD_DAYS = "slo:time_period:days"
CURRENT_BURN_RATE = "slo:current_burn_rate:ratio"
PERIOD_BURN_RATE = "slo:period_burn_rate:ratio"
BUDGET_REMAINING = "slo:period_error_budget_remaining:ratio"
SLO_INFO = "sloth_slo_info"


def sli(window: str) -> str:
    """The share of bad requests over `window` (a Prometheus duration such as 5m or 30d)."""
    return f"{SLI}{window}"
