"""The aiohttp server side: app factory, routes, middleware. Only this package imports aiohttp.web."""

from exporter.web.app import create_app

__all__ = ["create_app"]
