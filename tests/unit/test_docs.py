"""Facts the README and code cite live in the repository: no "SPEC" outside it, and the health
table names every threshold the code has."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.monitoring.health import HealthThresholds

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("README.md", "docs", "exporter", "tests", "bench", "grafana", "prometheus")


def test_nothing_cites_a_spec_outside_the_repository() -> None:
    citing = []
    for top in SOURCES:
        base = ROOT / top
        for path in [base] if base.is_file() else base.rglob("*"):
            if (
                path.suffix in (".py", ".md", ".yml")
                and path != Path(__file__)
                and re.search(r"\bSPEC\b", path.read_text(encoding="utf-8"))
            ):
                citing.append(str(path.relative_to(ROOT)))
    assert not citing


def test_the_health_table_documents_every_threshold_and_default() -> None:
    text = (ROOT / "docs" / "health.md").read_text()
    for key in HealthThresholds.override_keys():
        assert f"`{key}`" in text, key
    defaults = HealthThresholds()
    assert (defaults.service_penalty("redis"), defaults.latency_critical_ms) == (30, 500)
    assert "| Redis configured and down (fallback active) | 30 |" in text
    assert "> 500 ms | 25" in text and "| `healthy` | ≥ 80" in text
