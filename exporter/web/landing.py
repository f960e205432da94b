"""GET /endpoints: a plain HTML page (no JavaScript): version, current health, a link to every
endpoint. The live dashboard is at / (`exporter.web.dashboard`) and links here.

The endpoint list comes from the OpenAPI document, so the page lists exactly what the app serves.
"""

from __future__ import annotations

import html
import platform
from typing import Any

from aiohttp import web

from exporter.core.build import __version__
from exporter.web.keys import DOCUMENT, LIFECYCLE
from exporter.web.ops_routes import OPENAPI_PATH

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "color:#222}"
    "table{border-collapse:collapse}"
    "td,th{padding:.25rem .75rem;text-align:left;border-bottom:1px solid #ddd}"
    "code{background:#f4f4f4;padding:0 .2rem}.healthy{color:#1a7f37}.degraded{color:#9a6700}"
    ".poor{color:#bc4c00}.critical{color:#cf222e}.disabled,.starting{color:#666}"
)


def _health_rows(request: web.Request) -> tuple[str, str, list[tuple[str, str, str]]]:
    """Overall status and score, and (component, status, score) rows; 'starting' at first."""
    runtime = request.app[LIFECYCLE].runtime
    if runtime is None:
        return "starting", "n/a", []
    report = runtime.service.report
    rows = [(name, health.status, f"{health.score:g}") for name, health in report.all.items()]
    return report.overall.status, f"{report.overall.score:g}", rows


def _endpoint_rows(doc: dict[str, Any]) -> str:
    rows = []
    for path, item in doc["paths"].items():
        for method, spec in item.items():
            if method == "parameters":
                continue
            label = html.escape(path)
            target = (
                f'<a href="{label}">{label}</a>'
                if method == "get" and "{" not in path
                else f"<code>{label}</code>"
            )
            rows.append(
                f"<tr><td>{method.upper()}</td><td>{target}</td><td>{html.escape(spec['summary'])}</td></tr>"
            )
    return "\n".join(rows)


def render(request: web.Request) -> str:
    status, score, components = _health_rows(request)
    component_rows = "\n".join(
        f'<tr><td>{html.escape(name)}</td><td class="{status}">{status}</td><td>{score}</td></tr>'
        for name, status, score in components
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>session-metrics-exporter {__version__}</title>
<style>{STYLE}</style></head>
<body>
<h1>session-metrics-exporter</h1>
<p><a href="/">The live dashboard</a></p>
<p>Version <strong>{__version__}</strong> on Python {platform.python_version()}.</p>
<h2>Health: <span class="{status}">{status}</span> (score {score})</h2>
<table><tr><th>component</th><th>status</th><th>score</th></tr>
{component_rows}
</table>
<p>Details: <a href="/api/session-metrics/health-check">/api/session-metrics/health-check</a>
(<a href="/api/session-metrics/health-check?refresh=true">check now</a>).</p>
<h2>Endpoints</h2>
<table><tr><th>method</th><th>path</th><th>what</th></tr>
{_endpoint_rows(request.app[DOCUMENT])}
</table>
<p>Clearing the cache:
<code>curl -X POST -H 'Authorization: Bearer TOKEN'
 '/api/session-metrics/cache/clear?scope=memory'</code>.
The whole API is described in <a href="{OPENAPI_PATH}">{OPENAPI_PATH}</a>.</p>
</body></html>
"""


async def landing(request: web.Request) -> web.Response:
    return web.Response(text=render(request), content_type="text/html", charset="utf-8")
