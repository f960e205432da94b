"""The exporter's vocabularies as `Literal` types, so that mypy catches a wrong event type, health
issue code or error type; each tuple (the label values of a metric) is derived from its type.

    >>> "failover" in EVENT_TYPES
    True
"""

from __future__ import annotations

from typing import Literal, get_args

from exporter.core.catalog import ServiceDownCode

# Why an operation failed: `operation_errors_total{error}` and the JSON API's `error` field.
ErrorType = Literal[
    "not_found",
    "invalid",
    "unavailable",
    "busy",
    "full",
    "timeout",
    "upstream",
    "internal",
]
ERROR_TYPES: tuple[ErrorType, ...] = get_args(ErrorType)

# A health issue's code: docs/health.md's table, `health_issue{code}`.
# A service's "down" codes are declared with the service (exporter/core/catalog.py).
HealthIssueCode = Literal[
    ServiceDownCode,
    "redis_writes_refused",
    "figma_api_rate_limited",
    "figma_token_scope",
    "figma_cache_quota_hold",
    "latency_high",
    "latency_critical",
    "error_ratio_high",
    "error_ratio_critical",
    "cache_hit_fair",
    "cache_hit_poor",
    "replay_backlog_high",
    "memory_tier_full",
    "journal_unwritable",
    "journal_corrupt",
]
HEALTH_ISSUE_CODES: tuple[HealthIssueCode, ...] = get_args(HealthIssueCode)

# An event-log entry's type: `events_total{type}`, the SSE stream, the fleet's event stream.
EventType = Literal[
    "session_created",
    "session_expired",
    "session_deleted",
    "failover",
    "failback",
    "replay_done",
    "writes_refused",
    "writes_accepted",
    "reseeded",
    "replay_dropped",
    "upstream_down",
    "upstream_up",
    "upstream_rate_limited",
    "health_changed",
    "cache_cleared",
    "slow_operation",
    "tracking_lost",
    "tracking_restored",
    "epoch_changed",
    "master_switched",
    "journal_corrupt",
    "journal_unwritable",
    "journal_writable",
    "web_config_reloaded",
    "web_config_rejected",
]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)
