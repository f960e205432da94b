"""The aiohttp application factory and its lifecycle; it serves the routes of
`exporter.web.routes`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from exporter.core.metrics import Metrics
from exporter.core.settings import Settings
from exporter.monitoring.runtime import open_runtime
from exporter.web import openapi, sse
from exporter.web.allowed_hosts import AllowedHosts
from exporter.web.handling import instrumented_routes
from exporter.web.keys import (
    DOCUMENT,
    EXPOSITION,
    LIFECYCLE,
    METRICS,
    SETTINGS,
    WEB_CONFIG,
    Lifecycle,
)
from exporter.web.routes import ROUTES
from exporter.web.web_auth import WebConfigState, add_headers


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> web.Application:
    """Build the app on its own registry; components start with the app and stop with it.

    Tests pass a fresh `CollectorRegistry` and read values back from it.
    """
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    web_config = (
        WebConfigState(settings.web_config_file, metrics) if settings.web_config_file else None
    )
    # No middlewares: each route's handler is wrapped once (exporter.web.handling says why).
    app = web.Application(client_max_size=settings.max_body_bytes)
    if web_config is not None:
        app[WEB_CONFIG] = web_config
        app.on_response_prepare.append(add_headers(web_config))
        app.on_shutdown.append(lambda _: _close_web_config(web_config))
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[LIFECYCLE] = Lifecycle()
    app[EXPOSITION] = make_aiohttp_handler(metrics.registry)
    app[DOCUMENT] = openapi.document(ROUTES)
    app.cleanup_ctx.append(_runtime_context)
    app.on_shutdown.append(_mark_stopping)
    app.on_shutdown.append(sse.close_streams)
    hosts = AllowedHosts(settings.listen[0], settings.web_allowed_host)
    app.add_routes(instrumented_routes(ROUTES, metrics, web_config, hosts))
    return app


async def _close_web_config(web_config: WebConfigState) -> None:
    """At shutdown: logins still waiting for bcrypt are answered 503 at once, not waited for."""
    web_config.close()


async def _runtime_context(app: web.Application) -> AsyncIterator[None]:
    lifecycle = app[LIFECYCLE]
    web_config = app.get(WEB_CONFIG)
    async with open_runtime(app[SETTINGS], app[METRICS]) as runtime:
        lifecycle.runtime = runtime
        if web_config is not None:  # reloads are recorded as events while the log exists
            web_config.events = runtime.events
        lifecycle.ready = True
        yield
        lifecycle.ready = False
        if web_config is not None:
            web_config.events = None
        lifecycle.runtime = None


async def _mark_stopping(app: web.Application) -> None:
    app[LIFECYCLE].stopping = True
