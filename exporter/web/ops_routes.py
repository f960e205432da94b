"""Operational endpoints: /metrics, liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from exporter.monitoring.payloads import Status
from exporter.web.keys import LIFECYCLE
from exporter.web.responses import payload_response

OK = Status(status="ok")
READY = Status(status="ready")


async def healthy(request: web.Request) -> web.Response:
    return payload_response(OK)


async def ready(request: web.Request) -> web.Response:
    lifecycle = request.app[LIFECYCLE]
    if lifecycle.ready and not lifecycle.stopping:
        return payload_response(READY)
    return payload_response(Status(status="stopping" if lifecycle.stopping else "starting"), 503)
