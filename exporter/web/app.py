"""The aiohttp application factory and its lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.config import Settings
from exporter.metrics import Metrics
from exporter.web import figma_routes, landing, ops_routes, session_metrics_routes, session_routes
from exporter.web.cross_site import cross_site_middleware
from exporter.web.keys import LIFECYCLE, METRICS, SETTINGS, Lifecycle
from exporter.web.middleware import instrumentation_middleware
from exporter.web.runtime import open_runtime


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> web.Application:
    """Build the app on its own registry; components start with the app and stop with it.

    Tests pass a fresh `CollectorRegistry` and read values back from it.
    """
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    app = web.Application(
        middlewares=[instrumentation_middleware(metrics), cross_site_middleware()],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[LIFECYCLE] = Lifecycle()
    app.cleanup_ctx.append(_runtime_context)
    app.on_shutdown.append(_mark_stopping)
    for routes in (ops_routes, session_routes, figma_routes, session_metrics_routes, landing):
        routes.setup(app)
    return app


async def _runtime_context(app: web.Application) -> AsyncIterator[None]:
    lifecycle = app[LIFECYCLE]
    async with open_runtime(app[SETTINGS], app[METRICS]) as runtime:
        lifecycle.runtime = runtime
        lifecycle.ready = True
        yield
        lifecycle.ready = False
        lifecycle.runtime = None


async def _mark_stopping(app: web.Application) -> None:
    app[LIFECYCLE].stopping = True
