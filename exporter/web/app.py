"""The aiohttp application factory and its lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.config import Settings
from exporter.metrics import Metrics
from exporter.web import figma_routes, landing, ops_routes, session_metrics_routes, session_routes
from exporter.web.cross_site import cross_site_middleware
from exporter.web.keys import LIFECYCLE, METRICS, SETTINGS, WEB_CONFIG, Lifecycle
from exporter.web.middleware import instrumentation_middleware
from exporter.web.runtime import open_runtime
from exporter.web.web_auth import WebConfigState, add_headers, web_config_middleware


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> web.Application:
    """Build the app on its own registry; components start with the app and stop with it.

    Tests pass a fresh `CollectorRegistry` and read values back from it.
    """
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    middlewares = [instrumentation_middleware(metrics)]
    web_config = WebConfigState(settings.web_config_file) if settings.web_config_file else None
    if web_config is not None:  # auth before anything else runs, but counted in HTTP metrics
        middlewares.append(web_config_middleware(web_config))
    middlewares.append(cross_site_middleware())
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    if web_config is not None:
        app[WEB_CONFIG] = web_config
        app.on_response_prepare.append(add_headers(web_config))
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
