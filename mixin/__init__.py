"""The monitoring mixin: rules, dashboards and their Kubernetes wrappers from one config.

As monitoring mixins do it, one config (`mixin/config.yml`: job, runbook URL base, thresholds)
generates every monitoring artefact, and the committed copies are what the defaults generate:

    >>> from mixin.config import load
    >>> sorted(render_all(load()))[-2:]
    ['prometheus/rules/alerts.yml', 'prometheus/rules/recording.yml']
"""

from __future__ import annotations

from pathlib import Path

from mixin.config import MixinConfig

ROOT = Path(__file__).resolve().parents[1]


def render_all(config: MixinConfig) -> dict[str, str]:
    """Repository-relative path -> text of every generated file."""
    from grafana.dashboards import render_all as render_dashboards
    from mixin import kubernetes, rules

    recording, alerts = rules.render_recording(config), rules.render_alerts(config)
    dashboards = render_dashboards(config)
    files = {
        "prometheus/rules/recording.yml": recording,
        "prometheus/rules/alerts.yml": alerts,
        **{f"grafana/dashboards/{name}": text for name, text in dashboards.items()},
        kubernetes.PROMETHEUS_RULE: kubernetes.prometheus_rule(
            {"recording": recording, "alerts": alerts}
        ),
        kubernetes.DASHBOARDS_CONFIGMAP: kubernetes.dashboards_configmap(dashboards),
        kubernetes.SERVICE_MONITOR: kubernetes.service_monitor(config.job),
    }
    return dict(sorted(files.items()))
