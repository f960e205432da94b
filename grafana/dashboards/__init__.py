"""Dashboards as code: each module builds one dashboard; this package renders them to JSON.

The JSON files beside these modules are generated and committed; Grafana's file provider loads
them (grafana/provisioning/dashboards/). Regenerate with `python -m grafana.dashboards`
(`make dashboards`); the test suite fails when the committed JSON drifts from the code.

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

DIRECTORY = Path(__file__).resolve().parent
DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
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


def render_all() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def write_all(directory: Path = DIRECTORY) -> list[Path]:
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
