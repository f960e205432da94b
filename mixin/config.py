"""The mixin's one configuration: job selector, runbook URL base, thresholds, SLOs and alerts.

Defaults live in `mixin/config.yml` (committed); `load()` reads them and applies overrides, so
the committed rules and dashboards are what the defaults generate and another deployment can
generate its own:

    >>> config = load(job="sessions-prod")
    >>> config.selector
    'job="sessions-prod"'
    >>> config.runbook("SessionExporterDown").rsplit("#", 1)[1]
    'sessionexporterdown'

A profile (`mixin/profiles/<name>.yml`) is laid over the defaults. The `drill` profile divides
every SLO window, the SLO period and every alert's `for:` by its `time_scale`, so the incident
drills run the same rules a minute to the second (a `for:` at least `min_for`):

    >>> drill = load(profile="drill")
    >>> drill.slo.windows[0], drill.alert("Down").hold, drill.alert("MemoryTierFull").hold
    ('5s', '3s', '5s')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from exporter.core.catalog import MANAGER_NAMES
from mixin.durations import duration, seconds

DEFAULTS = Path(__file__).resolve().parent / "config.yml"
PROFILES = DEFAULTS.parent / "profiles"
MANAGERS = MANAGER_NAMES
PREFIX = "SessionExporter"  # every alert's name starts with it
SEVERITIES = ("critical", "warning")  # critical pages, warning opens a ticket
_JOB = re.compile(r"[A-Za-z0-9_.:/-]+")  # no quote or backslash: it goes inside a PromQL string
_NAME = re.compile(r"(?:[A-Z][a-z0-9]*)+")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class Levels:
    """A pair of thresholds for the dashboards' colours: yellow above `high`, red above
    `critical`."""

    high: float
    critical: float


@dataclass(frozen=True, slots=True)
class AlertSetting:
    """How long an alert's condition must hold (`for:`) and who hears of it."""

    hold: str
    severity: str


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """One window pair of a burn-rate alert: both error ratios over `burn_rate` x the budget."""

    long: str
    short: str
    burn_rate: float


@dataclass(frozen=True, slots=True)
class BurnAlert:
    """A burn-rate alert of every SLO (`FastBurn`, `SlowBurn`): its window pairs, and the window
    that must still burn budget now (None: the pairs alone, as in the SRE workbook)."""

    name: str
    windows: tuple[BurnWindow, ...]
    reset_window: str | None


@dataclass(frozen=True, slots=True)
class Slo:
    """One service-level objective over the HTTP requests of `routes` (route templates).

    Availability when `latency_seconds` is None (a 5xx is an error, a 4xx is not); otherwise
    latency (a request slower than `latency_seconds` is an error)."""

    name: str  # CamelCase, in alert names: SessionExporter<name><BurnAlert.name>
    slug: str  # the sloth_slo label
    description: str
    routes: tuple[str, ...]
    objective: float
    latency_seconds: float | None = None

    @property
    def budget(self) -> float:
        """The share of requests allowed to fail over the period."""
        return round(1 - self.objective, 12)


@dataclass(frozen=True, slots=True)
class SloConfig:
    period: str
    windows: tuple[str, ...]
    burn_alerts: tuple[BurnAlert, ...]
    objectives: tuple[Slo, ...]


@dataclass(frozen=True, slots=True)
class MixinConfig:
    job: str
    runbook_url: str
    latency_seconds: dict[str, Levels]
    error_ratio: Levels
    cache_hit_fair: float
    cache_hit_poor: float
    replay_backlog_ratio: float
    memory_tier_full_ratio: float
    slo: SloConfig
    alerts: dict[str, AlertSetting]
    time_scale: float = 1.0
    min_for: str = "0s"  # after scaling, a `for:` that is not 0 is at least this long

    @property
    def selector(self) -> str:
        """The matcher every rule selector carries."""
        return f'job="{self.job}"'

    def runbook(self, alert: str) -> str:
        """Absolute link to the alert's section of docs/runbook.md (GitHub anchors: lowercase)."""
        return f"{self.runbook_url}#{alert.lower()}"

    def alert(self, name: str) -> AlertSetting:
        """The `for:` and severity of the alert `SessionExporter<name>`."""
        try:
            return self.alerts[name]
        except KeyError:
            raise ValueError(f"alerts: no `for:` and severity for {name}") from None


def load(
    path: Path = DEFAULTS,
    *,
    job: str | None = None,
    runbook_url: str | None = None,
    profile: str | None = None,
) -> MixinConfig:
    """The config at `path`, under `profile`, with the given overrides; ValueError names a bad
    setting."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if profile is not None:
        data = _overlay(data, _profile(profile))
    try:
        config = _parse(data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path.name}: missing or malformed setting {exc}") from None
    if job is not None:
        config = replace(config, job=job)
    if runbook_url is not None:
        config = replace(config, runbook_url=runbook_url)
    _validate(config)
    return _scaled(config) if config.time_scale != 1 else config


def profiles() -> list[str]:
    return sorted(path.stem for path in PROFILES.glob("*.yml"))


def _profile(name: str) -> dict[str, Any]:
    path = PROFILES / f"{name}.yml"
    if not path.exists():
        raise ValueError(f"profile: {name!r} is none of {profiles()}")
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, mappings merged key by key."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _overlay(base[key], value)
        else:
            merged[key] = value
    return merged


def _parse(data: dict[str, Any]) -> MixinConfig:
    latency = data["latency_seconds"]
    return MixinConfig(
        job=str(data["job"]),
        runbook_url=str(data["runbook_url"]),
        latency_seconds={m: _levels(latency[m]) for m in MANAGERS},
        error_ratio=_levels(data["error_ratio"]),
        cache_hit_fair=float(data["cache_hit_ratio"]["fair"]),
        cache_hit_poor=float(data["cache_hit_ratio"]["poor"]),
        replay_backlog_ratio=float(data["replay_backlog_ratio"]),
        memory_tier_full_ratio=float(data["memory_tier_full_ratio"]),
        slo=_slo(data["slo"]),
        alerts={
            str(name): AlertSetting(hold=str(value["for"]), severity=str(value["severity"]))
            for name, value in data["alerts"].items()
        },
        time_scale=float(data.get("time_scale", 1)),
        min_for=str(data.get("min_for", "0s")),
    )


def _levels(data: dict[str, Any]) -> Levels:
    return Levels(high=float(data["high"]), critical=float(data["critical"]))


def _slo(data: dict[str, Any]) -> SloConfig:
    return SloConfig(
        period=str(data["period"]),
        windows=tuple(str(w) for w in data["windows"]),
        burn_alerts=tuple(
            BurnAlert(
                name=str(name),
                windows=tuple(
                    BurnWindow(str(w["long"]), str(w["short"]), float(w["burn_rate"]))
                    for w in alert["windows"]
                ),
                reset_window=alert.get("reset_window"),
            )
            for name, alert in data["burn_alerts"].items()
        ),
        objectives=tuple(
            Slo(
                name=str(name),
                slug=str(slo["slo"]),
                description=str(slo["description"]),
                routes=tuple(str(r) for r in slo["routes"]),
                objective=float(slo["objective"]),
                latency_seconds=(
                    None if slo.get("latency_seconds") is None else float(slo["latency_seconds"])
                ),
            )
            for name, slo in data["objectives"].items()
        ),
    )


def _validate(config: MixinConfig) -> None:
    if not _JOB.fullmatch(config.job):
        raise ValueError(f"job: {config.job!r} is not a plain Prometheus job name")
    if not config.runbook_url.startswith(("https://", "http://")) or "#" in config.runbook_url:
        raise ValueError("runbook_url: an absolute http(s) URL without a #fragment")
    for name, levels in {**config.latency_seconds, "error_ratio": config.error_ratio}.items():
        if not 0 < levels.high < levels.critical:
            raise ValueError(f"{name}: need 0 < high < critical")
    if config.time_scale <= 0:
        raise ValueError("time_scale: must be positive")
    seconds(config.min_for)
    _validate_slo(config.slo)
    slo = config.slo
    expected = {f"{o.name}{b.name}" for o in slo.objectives for b in slo.burn_alerts}
    for name, setting in config.alerts.items():
        if setting.severity not in SEVERITIES:
            raise ValueError(f"alerts: {name}: severity is one of {SEVERITIES}")
        seconds(setting.hold)  # ValueError naming the duration
    missing = expected - set(config.alerts)
    if missing:
        raise ValueError(f"alerts: no `for:` and severity for {sorted(missing)}")


def _validate_slo(slo: SloConfig) -> None:
    for window in (slo.period, *slo.windows):
        seconds(window)
    for burn in slo.burn_alerts:
        _validate_burn_alert(burn, slo.windows)
    for objective in slo.objectives:
        _validate_objective(objective)


def _validate_burn_alert(burn: BurnAlert, recorded: tuple[str, ...]) -> None:
    if not _NAME.fullmatch(burn.name):
        raise ValueError(f"slo.burn_alerts: {burn.name!r} is not a CamelCase name")
    used = [w.long for w in burn.windows] + [w.short for w in burn.windows]
    if burn.reset_window is not None:
        used.append(burn.reset_window)
    unknown = sorted(set(used) - set(recorded))
    if unknown:
        raise ValueError(f"slo.burn_alerts.{burn.name}: windows {unknown} are not recorded")
    for pair in burn.windows:
        if not seconds(pair.short) < seconds(pair.long) or pair.burn_rate <= 0:
            raise ValueError(f"slo.burn_alerts.{burn.name}: need short < long, burn_rate > 0")


def _validate_objective(objective: Slo) -> None:
    if not (_NAME.fullmatch(objective.name) and _SLUG.fullmatch(objective.slug)):
        raise ValueError(f"slo.objectives.{objective.name}: CamelCase name, kebab-case slo")
    if not 0 < objective.objective < 1:
        raise ValueError(f"slo.objectives.{objective.name}: objective is a ratio in (0, 1)")
    if not objective.routes or any('"' in r or "\\" in r for r in objective.routes):
        raise ValueError(f"slo.objectives.{objective.name}: routes are route templates")


def _scaled(config: MixinConfig) -> MixinConfig:
    """Every SLO window, the period and every `for:` divided by `time_scale` (a `for:` that is
    not 0 no shorter than `min_for`)."""

    def scale(text: str) -> str:
        return duration(seconds(text) / config.time_scale)

    def hold(text: str) -> str:
        scaled = seconds(text) / config.time_scale
        return duration(max(scaled, seconds(config.min_for)) if scaled else 0)

    slo = config.slo
    burn_alerts = tuple(
        replace(
            burn,
            windows=tuple(
                replace(w, long=scale(w.long), short=scale(w.short)) for w in burn.windows
            ),
            reset_window=None if burn.reset_window is None else scale(burn.reset_window),
        )
        for burn in slo.burn_alerts
    )
    return replace(
        config,
        slo=replace(
            slo,
            period=scale(slo.period),
            windows=tuple(scale(w) for w in slo.windows),
            burn_alerts=burn_alerts,
        ),
        alerts={
            name: replace(setting, hold=hold(setting.hold))
            for name, setting in config.alerts.items()
        },
    )
