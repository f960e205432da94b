"""The mixin's one configuration: job selector, runbook URL base and thresholds.

Defaults live in `mixin/config.yml` (committed); `load()` reads them and applies overrides, so
the committed rules and dashboards are what the defaults generate and another deployment can
generate its own:

    >>> config = load(job="sessions-prod")
    >>> config.selector
    'job="sessions-prod"'
    >>> config.runbook("SessionExporterDown").rsplit("#", 1)[1]
    'sessionexporterdown'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

DEFAULTS = Path(__file__).resolve().parent / "config.yml"
MANAGERS = ("session", "figma")
_JOB = re.compile(r"[A-Za-z0-9_.:/-]+")  # no quote or backslash: it goes inside a PromQL string


@dataclass(frozen=True, slots=True)
class Levels:
    """A pair of thresholds: `high` opens a ticket, `critical` pages."""

    high: float
    critical: float


@dataclass(frozen=True, slots=True)
class MixinConfig:
    job: str
    runbook_url: str
    latency_seconds: dict[str, Levels]
    error_ratio: Levels
    cache_hit_fair: float
    cache_hit_poor: float
    health_degraded: float
    health_critical: float
    replay_backlog_ratio: float

    @property
    def selector(self) -> str:
        """The matcher every rule selector carries."""
        return f'job="{self.job}"'

    def runbook(self, alert: str) -> str:
        """Absolute link to the alert's section of docs/runbook.md (GitHub anchors: lowercase)."""
        return f"{self.runbook_url}#{alert.lower()}"


def load(
    path: Path = DEFAULTS, *, job: str | None = None, runbook_url: str | None = None
) -> MixinConfig:
    """The config at `path` with the given overrides; ValueError names a bad setting."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    config = _parse(data)
    if job is not None:
        config = replace(config, job=job)
    if runbook_url is not None:
        config = replace(config, runbook_url=runbook_url)
    _validate(config)
    return config


def _parse(data: dict[str, Any]) -> MixinConfig:
    latency = data["latency_seconds"]
    return MixinConfig(
        job=str(data["job"]),
        runbook_url=str(data["runbook_url"]),
        latency_seconds={m: _levels(latency[m]) for m in MANAGERS},
        error_ratio=_levels(data["error_ratio"]),
        cache_hit_fair=float(data["cache_hit_ratio"]["fair"]),
        cache_hit_poor=float(data["cache_hit_ratio"]["poor"]),
        health_degraded=float(data["health_score"]["degraded"]),
        health_critical=float(data["health_score"]["critical"]),
        replay_backlog_ratio=float(data["replay_backlog_ratio"]),
    )


def _levels(data: dict[str, Any]) -> Levels:
    return Levels(high=float(data["high"]), critical=float(data["critical"]))


def _validate(config: MixinConfig) -> None:
    if not _JOB.fullmatch(config.job):
        raise ValueError(f"job: {config.job!r} is not a plain Prometheus job name")
    if not config.runbook_url.startswith(("https://", "http://")) or "#" in config.runbook_url:
        raise ValueError("runbook_url: an absolute http(s) URL without a #fragment")
    for name, levels in {**config.latency_seconds, "error_ratio": config.error_ratio}.items():
        if not 0 < levels.high < levels.critical:
            raise ValueError(f"{name}: need 0 < high < critical")
