"""Operational endpoints: /metrics, liveness and readiness."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from exporter.web.keys import LIFECYCLE, METRICS
from exporter.web.responses import json_response


async def healthy(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    lifecycle = request.app[LIFECYCLE]
    if lifecycle.ready and not lifecycle.stopping:
        return json_response({"status": "ready"})
    state = "stopping" if lifecycle.stopping else "starting"
    return json_response({"status": state}, status=503)


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", make_aiohttp_handler(app[METRICS].registry))
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
