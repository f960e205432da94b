"""The aiohttp server side: app factory, routes, request handling (the only user of aiohttp.web)."""

from exporter.web.app import create_app

__all__ = ["create_app"]
