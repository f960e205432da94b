"""Dashboards as code: each module builds one dashboard; this package renders them to JSON.

The JSON files beside these modules are generated and committed; Grafana's file provider loads
them (grafana/provisioning/dashboards/). Thresholds and the default job come from the mixin
config (mixin/config.yml). Regenerate with `python -m mixin` (`make mixin`; `make dashboards` and
`python -m grafana.dashboards` regenerate the dashboards alone); the test suite fails when the
committed JSON drifts from the code.

    >>> from grafana.dashboards import render_all
    >>> sorted(render_all())
    ['session-management.json']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana.dashboards import session_management
from mixin.config import MixinConfig
from mixin.config import load as load_config

DIRECTORY = Path(__file__).resolve().parent
DASHBOARDS: dict[str, Callable[[MixinConfig], db.Dashboard]] = {
    "session-management.json": session_management.build,
}


def to_dict(dashboard: db.Dashboard) -> dict[str, Any]:
    """The dashboard model as plain JSON data, with stable unique panel ids."""
    data: dict[str, Any] = json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))
    # The SDK leaves ids unset (0 for rows); Grafana needs them unique to link and edit panels.
    for panel_id, panel in enumerate(iter_panels(data), start=1):
        panel["id"] = panel_id
    return data


def iter_panels(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels nested in collapsed rows, in layout order."""
    for panel in data.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def render(dashboard: db.Dashboard) -> str:
    return json.dumps(to_dict(dashboard), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all(config: MixinConfig | None = None) -> dict[str, str]:
    """File name -> JSON text of every dashboard, for the mixin config (default: committed)."""
    config = config or load_config()
    return {name: render(build(config)) for name, build in DASHBOARDS.items()}


def write_all(directory: Path = DIRECTORY, config: MixinConfig | None = None) -> list[Path]:
    written = []
    for name, text in render_all(config).items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
