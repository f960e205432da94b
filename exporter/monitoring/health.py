"""The health score: a pure function from measured inputs to score, status and issues.

No I/O and no Prometheus here; the service gathers the inputs and exports the result. The rules
are the table in docs/health.md, each threshold and penalty a field of `HealthThresholds`:

    >>> down = ComponentInputs(services={"redis": "down"})
    >>> report = assess({"session": down, "figma": ComponentInputs()})
    >>> report.overall.score, report.overall.status, [i.code for i in report.overall.issues]
    (70.0, 'degraded', ['redis_down'])

Each component (`session`, `figma`) is scored on its own inputs. `overall` applies the table to the
whole system: every row of the table counts at most once, at its worst across the components, so
one slow manager does not count twice and the overall score never exceeds any component's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from exporter.core.catalog import SERVICES, ManagerName, ServiceName
from exporter.core.catalog import service as service_spec
from exporter.core.vocabulary import HealthIssueCode

# `refusing`: Redis answers but refuses writes (read-only, out of memory, ...);
# `rate_limited`: reachable, but refusing calls until a 429's Retry-After has passed;
# `limited_scope`: reachable, but the token cannot call the probe's endpoint (a visible issue).
Availability = Literal[
    "up", "down", "refusing", "disabled", "unknown", "rate_limited", "limited_scope"
]
Severity = Literal["info", "warning", "critical"]

OVERALL = "overall"
RATE_LIMITED_ISSUES: dict[ServiceName, HealthIssueCode] = {"figma_api": "figma_api_rate_limited"}
SCOPE_ISSUES: dict[ServiceName, HealthIssueCode] = {"figma_api": "figma_token_scope"}
# Issues of one row of the table share its penalty: the row counts once, however many match.
# Each service is a row of its own (down, refusing writes, rate limited, short of scope).
ROW_OF: dict[HealthIssueCode, str] = {
    **{spec.down_issue: spec.name for spec in SERVICES},
    "redis_writes_refused": "redis",
    **{code: name for name, code in RATE_LIMITED_ISSUES.items()},
    **{code: name for name, code in SCOPE_ISSUES.items()},
    "latency_high": "latency",
    "latency_critical": "latency",
    "error_ratio_high": "errors",
    "error_ratio_critical": "errors",
    "cache_hit_fair": "cache",
    "cache_hit_poor": "cache",
    "replay_backlog_high": "resources",
    "memory_tier_full": "resources",
    "journal_unwritable": "journal",
    "journal_corrupt": "journal_damage",
    "figma_cache_quota_hold": "quota",
}


def _default_down_penalties() -> dict[ServiceName, float]:
    return {spec.name: spec.down_penalty for spec in SERVICES}


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """Thresholds and penalties; defaults: docs/health.md. Ratios are fractions (0.05 = 5 %)."""

    # Per service, overridden by `<service>_down_penalty` keys (catalog.ServiceSpec.penalty_key).
    down_penalties: Mapping[ServiceName, float] = field(default_factory=_default_down_penalties)
    redis_writes_refused_penalty: float = 20
    latency_high_ms: float = 100
    latency_high_penalty: float = 15
    latency_critical_ms: float = 500
    latency_critical_penalty: float = 25
    # Figma's own latencies (files ~0.4 s, renders ~1.2 s more): the session thresholds would
    # page on every normal call.
    figma_latency_high_ms: float = 2000
    figma_latency_critical_ms: float = 5000
    figma_api_rate_limited_penalty: float = 10
    error_ratio_high: float = 0.01
    error_ratio_high_penalty: float = 10
    error_ratio_critical: float = 0.05
    error_ratio_critical_penalty: float = 20
    cache_hit_fair: float = 0.75
    cache_hit_fair_penalty: float = 5
    cache_hit_poor: float = 0.50
    cache_hit_poor_penalty: float = 10
    replay_backlog_ratio: float = 0.80
    memory_fill_ratio: float = 0.90
    resource_penalty: float = 10
    journal_unwritable_penalty: float = 20
    journal_corrupt_penalty: float = 10
    healthy_min: float = 80
    degraded_min: float = 60
    poor_min: float = 40
    cache_excellent: float = 0.90

    def service_penalty(self, service: ServiceName) -> float:
        return self.down_penalties[service]

    def latency_ms(self, component: str) -> tuple[float, float]:
        """(high, critical) p95 thresholds for `component`: figma has its own."""
        if component == "figma":
            return self.figma_latency_high_ms, self.figma_latency_critical_ms
        return self.latency_high_ms, self.latency_critical_ms

    @classmethod
    def override_keys(cls) -> set[str]:
        """The keys `--health-thresholds` accepts (docs/health.md documents each)."""
        fields = set(cls.__dataclass_fields__) - {"down_penalties"}
        return fields | {spec.penalty_key for spec in SERVICES}

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, float], **defaults: float) -> HealthThresholds:
        """Documented defaults, then `defaults`, then `overrides`; ValueError names unknown keys."""
        penalty_keys = {spec.penalty_key: spec.name for spec in SERVICES}
        known = cls.override_keys()
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown threshold {unknown[0]!r}; known: {', '.join(sorted(known))}")
        merged = {**defaults, **overrides}
        down = _default_down_penalties()
        for key, name in penalty_keys.items():
            if key in merged:
                down[name] = merged.pop(key)
        return cls(down_penalties=down, **merged)


@dataclass(frozen=True, slots=True)
class ComponentInputs:
    """What one component measured. `None` means no data: that row is not judged."""

    services: Mapping[ServiceName, Availability] = field(default_factory=dict)
    p95_latency_ms: float | None = None
    error_ratio: float | None = None
    cache_hit_ratio: float | None = None
    replay_backlog_ratio: float | None = None
    memory_fill_ratio: float | None = None
    # A component none of whose services is configured (figma without token or MCP URL).
    disabled: bool = False
    # The outage journal: why its disk refuses writes (None: it takes them), and how many
    # damaged journal files are set aside in its directory.
    journal_write_error: str | None = None
    journal_corrupt_files: int = 0
    # Why the Figma cache is holding back (serving copies within their stale bound instead of
    # spending a short rate-limit tier), and that bound in seconds; None while it is not.
    quota_hold: str | None = None
    stale_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Issue:
    code: HealthIssueCode
    severity: Severity
    message: str
    value: float
    threshold: float
    penalty: float
    component: str = ""


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    name: str
    score: float
    status: str
    issues: tuple[Issue, ...] = ()


@dataclass(frozen=True, slots=True)
class HealthReport:
    overall: ComponentHealth
    components: Mapping[ManagerName, ComponentHealth]

    @property
    def all(self) -> dict[str, ComponentHealth]:
        """Every component including `overall`, keyed by name."""
        every: dict[str, ComponentHealth] = {name: h for name, h in self.components.items()}
        every[OVERALL] = self.overall
        return every


def status_for(score: float, thresholds: HealthThresholds = HealthThresholds()) -> str:
    """healthy >= 80, degraded >= 60, poor >= 40, else critical."""
    if score >= thresholds.healthy_min:
        return "healthy"
    if score >= thresholds.degraded_min:
        return "degraded"
    if score >= thresholds.poor_min:
        return "poor"
    return "critical"


def cache_efficiency(
    hit_ratio: float | None, thresholds: HealthThresholds = HealthThresholds()
) -> str | None:
    """excellent >= 90 %, good >= 75 %, fair >= 50 %, else poor; None without lookups."""
    if hit_ratio is None:
        return None
    if hit_ratio >= thresholds.cache_excellent:
        return "excellent"
    if hit_ratio >= thresholds.cache_hit_fair:
        return "good"
    if hit_ratio >= thresholds.cache_hit_poor:
        return "fair"
    return "poor"


def assess(
    components: Mapping[ManagerName, ComponentInputs],
    thresholds: HealthThresholds = HealthThresholds(),
) -> HealthReport:
    """Score every component, then the whole system (each table row once, at its worst)."""
    scored = {name: _component(name, inputs, thresholds) for name, inputs in components.items()}
    issues = [issue for health in scored.values() for issue in health.issues]
    penalty = sum(_worst_per_row(issues).values())
    score = _clamp(100 - penalty)
    overall = ComponentHealth(OVERALL, score, status_for(score, thresholds), tuple(issues))
    return HealthReport(overall, scored)


def find_issues(
    inputs: ComponentInputs,
    thresholds: HealthThresholds = HealthThresholds(),
    component: str = "session",
) -> list[Issue]:
    """Every row of the table that matches `inputs`, in table order."""
    found: list[Issue] = []
    for service, availability in inputs.services.items():
        issue = _service_issue(service, availability, thresholds)
        if issue is not None:
            found.append(issue)
    latency = _latency(inputs, thresholds, component)
    if latency is not None:
        found.append(latency)
    checks = (
        _errors,
        _cache,
        _replay_backlog,
        _memory_fill,
        _journal_unwritable,
        _corrupt,
        _quota_hold,
    )
    for check in checks:
        issue = check(inputs, thresholds)
        if issue is not None:
            found.append(issue)
    return found


def _component(name: str, inputs: ComponentInputs, thresholds: HealthThresholds) -> ComponentHealth:
    if inputs.disabled:
        return ComponentHealth(name, 100.0, "disabled")
    issues = tuple(_share_rows(find_issues(inputs, thresholds, name), name))
    score = _clamp(100 - sum(issue.penalty for issue in issues))
    return ComponentHealth(name, score, status_for(score, thresholds), issues)


def _share_rows(issues: Iterable[Issue], component: str) -> list[Issue]:
    """Tag issues with their component; a second issue of the same row carries no extra penalty."""
    seen: set[str] = set()
    shared: list[Issue] = []
    for issue in issues:
        row = ROW_OF[issue.code]
        penalty = 0.0 if row in seen else issue.penalty
        seen.add(row)
        shared.append(_replace(issue, penalty=penalty, component=component))
    return shared


def _worst_per_row(issues: Iterable[Issue]) -> dict[str, float]:
    worst: dict[str, float] = {}
    for issue in issues:
        row = ROW_OF[issue.code]
        worst[row] = max(worst.get(row, 0.0), issue.penalty)
    return worst


def _service_down(service: ServiceName, t: HealthThresholds) -> Issue:
    spec = service_spec(service)
    return Issue(
        spec.down_issue,
        "critical",
        f"{spec.display_name} is configured but unreachable; {spec.down_impact}",
        0.0,
        1.0,
        t.service_penalty(service),
    )


def _writes_refused(t: HealthThresholds) -> Issue:
    return Issue(
        "redis_writes_refused",
        "critical",
        "Redis answers but refuses writes; writes are journalled locally until it accepts them",
        0.0,
        1.0,
        t.redis_writes_refused_penalty,
    )


def _service_issue(service: ServiceName, availability: str, t: HealthThresholds) -> Issue | None:
    name = service_spec(service).display_name
    if availability == "down":
        return _service_down(service, t)
    if availability == "refusing":
        return _writes_refused(t)
    if availability == "rate_limited" and service in RATE_LIMITED_ISSUES:
        return Issue(
            RATE_LIMITED_ISSUES[service],
            "warning",
            f"{name} is rate limiting this token; uncached calls fail until the limit passes",
            1.0,
            1.0,
            t.figma_api_rate_limited_penalty,
        )
    if availability == "limited_scope" and service in SCOPE_ISSUES:
        # Reachable and serving data calls: worth showing, not worth points.
        return Issue(
            SCOPE_ISSUES[service],
            "info",
            f"the {name} token lacks scope current_user:read; availability is judged from"
            " data calls",
            1.0,
            1.0,
            0.0,
        )
    return None


def _latency(inputs: ComponentInputs, t: HealthThresholds, component: str) -> Issue | None:
    p95 = inputs.p95_latency_ms
    high, critical = t.latency_ms(component)
    if p95 is None or p95 <= high:
        return None
    if p95 > critical:
        return Issue(
            "latency_critical",
            "critical",
            f"p95 latency {p95:.1f} ms is over {critical:g} ms",
            p95,
            critical,
            t.latency_critical_penalty,
        )
    return Issue(
        "latency_high",
        "warning",
        f"p95 latency {p95:.1f} ms is over {high:g} ms",
        p95,
        high,
        t.latency_high_penalty,
    )


def _errors(inputs: ComponentInputs, t: HealthThresholds) -> Issue | None:
    ratio = inputs.error_ratio
    if ratio is None or ratio <= t.error_ratio_high:
        return None
    if ratio > t.error_ratio_critical:
        return Issue(
            "error_ratio_critical",
            "critical",
            f"{ratio:.1%} of operations failed (limit {t.error_ratio_critical:.0%})",
            ratio,
            t.error_ratio_critical,
            t.error_ratio_critical_penalty,
        )
    return Issue(
        "error_ratio_high",
        "warning",
        f"{ratio:.1%} of operations failed (limit {t.error_ratio_high:.0%})",
        ratio,
        t.error_ratio_high,
        t.error_ratio_high_penalty,
    )


def _cache(inputs: ComponentInputs, t: HealthThresholds) -> Issue | None:
    ratio = inputs.cache_hit_ratio
    if ratio is None or ratio >= t.cache_hit_fair:
        return None
    if ratio < t.cache_hit_poor:
        return Issue(
            "cache_hit_poor",
            "warning",
            f"cache hit ratio {ratio:.1%} is poor (under {t.cache_hit_poor:.0%})",
            ratio,
            t.cache_hit_poor,
            t.cache_hit_poor_penalty,
        )
    return Issue(
        "cache_hit_fair",
        "info",
        f"cache hit ratio {ratio:.1%} is only fair (under {t.cache_hit_fair:.0%})",
        ratio,
        t.cache_hit_fair,
        t.cache_hit_fair_penalty,
    )


def _replay_backlog(inputs: ComponentInputs, t: HealthThresholds) -> Issue | None:
    ratio = inputs.replay_backlog_ratio
    if ratio is None or ratio <= t.replay_backlog_ratio:
        return None
    return Issue(
        "replay_backlog_high",
        "warning",
        f"replay journal is {ratio:.0%} full (limit {t.replay_backlog_ratio:.0%}); "
        "writes may be dropped",
        ratio,
        t.replay_backlog_ratio,
        t.resource_penalty,
    )


def _memory_fill(inputs: ComponentInputs, t: HealthThresholds) -> Issue | None:
    ratio = inputs.memory_fill_ratio
    if ratio is None or ratio <= t.memory_fill_ratio:
        return None
    return Issue(
        "memory_tier_full",
        "warning",
        f"memory tier is {ratio:.0%} full (limit {t.memory_fill_ratio:.0%}); "
        "entries are being evicted",
        ratio,
        t.memory_fill_ratio,
        t.resource_penalty,
    )


def _journal_unwritable(inputs: ComponentInputs, t: HealthThresholds) -> Issue | None:
    error = inputs.journal_write_error
    if error is None:
        return None
    return Issue(
        "journal_unwritable",
        "critical",
        f"the outage journal's disk refuses writes ({error}); during a Redis outage writes are "
        "answered 503 until it takes them again",
        0.0,
        1.0,
        t.journal_unwritable_penalty,
    )


def _corrupt(inputs: ComponentInputs, t: HealthThresholds) -> Issue | None:
    count = inputs.journal_corrupt_files
    if count <= 0:
        return None
    return Issue(
        "journal_corrupt",
        "warning",
        f"{count} damaged outage journal file(s) set aside (journal.log.corrupt-*): their intact "
        "writes are replayed, the damaged ones are lost; inspect, then remove the files",
        float(count),
        0.0,
        t.journal_corrupt_penalty,
    )


def _quota_hold(inputs: ComponentInputs, t: HealthThresholds) -> Issue | None:
    """Holding back is the cache working as configured: worth showing, not worth points."""
    if inputs.quota_hold is None:
        return None
    return Issue(
        "figma_cache_quota_hold",
        "info",
        f"Figma's rate limits are short ({inputs.quota_hold}): cached Figma copies are served up"
        f" to {inputs.stale_seconds:g} s past their TTL instead of revalidating",
        1.0,
        1.0,
        0.0,
    )


def _replace(issue: Issue, *, penalty: float, component: str) -> Issue:
    return Issue(
        issue.code, issue.severity, issue.message, issue.value, issue.threshold, penalty, component
    )


def _clamp(score: float) -> float:
    return float(min(100.0, max(0.0, score)))
