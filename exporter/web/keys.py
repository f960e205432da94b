"""Typed application keys shared by the app factory and the route modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from exporter.core.metrics import Metrics
from exporter.core.settings import Settings
from exporter.web.api_error import ApiError

if TYPE_CHECKING:
    from exporter.monitoring.runtime import Runtime
    from exporter.web.web_auth import WebConfigState


@dataclass(slots=True)
class Lifecycle:
    """Readiness: false while starting and from the moment shutdown begins."""

    ready: bool = False
    stopping: bool = False
    runtime: Runtime | None = None


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
WEB_CONFIG: web.AppKey[WebConfigState] = web.AppKey("web_config")
# The OpenAPI document, and the handler exposing the app's registry (made once per app).
DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
EXPOSITION: web.AppKey[Callable[[web.Request], Awaitable[web.StreamResponse]]] = web.AppKey(
    "exposition"
)


def get_runtime(request: web.Request) -> Runtime:
    """The running components, or 503 while the app is still starting."""
    runtime = request.app[LIFECYCLE].runtime
    if runtime is None:
        raise ApiError(503, "starting", "the exporter is starting", {"Retry-After": "1"})
    return runtime
