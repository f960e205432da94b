"""Operational endpoints: /metrics, liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from exporter.monitoring.payloads import Status
from exporter.web.keys import DOCUMENT, EXPOSITION, LIFECYCLE
from exporter.web.responses import json_response, payload_response

OPENAPI_PATH = "/api/openapi.json"
OK = Status(status="ok")
READY = Status(status="ready")


async def exposition(request: web.Request) -> web.StreamResponse:
    """The app's registry in the format the scraper asks for (prometheus_client's handler)."""
    return await request.app[EXPOSITION](request)


async def healthy(request: web.Request) -> web.Response:
    return payload_response(OK)


async def ready(request: web.Request) -> web.Response:
    lifecycle = request.app[LIFECYCLE]
    if lifecycle.ready and not lifecycle.stopping:
        return payload_response(READY)
    return payload_response(Status(status="stopping" if lifecycle.stopping else "starting"), 503)


async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI document, rendered once when the app was made (`exporter.web.openapi`)."""
    return json_response(request.app[DOCUMENT])
