"""The aiohttp server side: app factory, routes, middleware (the only user of aiohttp.web)."""

from exporter.web.app import create_app

__all__ = ["create_app"]
