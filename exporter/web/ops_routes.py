"""Operational endpoints: /metrics, liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from exporter.web.keys import LIFECYCLE
from exporter.web.responses import json_response


async def healthy(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    lifecycle = request.app[LIFECYCLE]
    if lifecycle.ready and not lifecycle.stopping:
        return json_response({"status": "ready"})
    state = "stopping" if lifecycle.stopping else "starting"
    return json_response({"status": state}, status=503)
