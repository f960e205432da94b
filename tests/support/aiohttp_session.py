"""A small aiohttp app keeping a counter in an aiohttp-session session on TieredStorage, served
by aiohttp's TestServer, with the registry its metrics go to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp_session
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.library.aiohttp_session import TieredStorage

# aiohttp-session 2.12 keys the request with strings; aiohttp 3.14 warns once per key.
UPSTREAM_WARNING = "ignore:It is recommended to use web.RequestKey"


async def count(request: web.Request) -> web.Response:
    """Increment the session's counter; answer the new value."""
    session = await aiohttp_session.get_session(request)
    session["n"] = session.get("n", 0) + 1
    return web.json_response({"n": session["n"]})


async def peek(request: web.Request) -> web.Response:
    """The counter without changing the session (null for a new session)."""
    session = await aiohttp_session.get_session(request)
    return web.json_response({"n": session.get("n"), "new": session.new})


async def touch(request: web.Request) -> web.Response:
    """Marks the session changed without changing it."""
    session = await aiohttp_session.get_session(request)
    session.changed()
    return web.json_response({"n": session.get("n")})


async def logout(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    session.invalidate()
    return web.json_response({})


def counter_app(storage: TieredStorage) -> web.Application:
    app = web.Application()
    aiohttp_session.setup(app, storage)
    app.cleanup_ctx.append(storage.cleanup_ctx)
    app.router.add_get("/count", count)
    app.router.add_get("/peek", peek)
    app.router.add_get("/touch", touch)
    app.router.add_get("/logout", logout)
    return app


@dataclass
class CounterApp:
    client: TestClient[web.Request, web.Application]
    storage: TieredStorage
    registry: CollectorRegistry

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.registry.get_sample_value(f"session_exporter_{name}", labels or {})
        assert value is not None, f"no sample session_exporter_{name}{labels or ''}"
        return value


@asynccontextmanager
async def serve_counter(redis_url: str | None, **options: Any) -> AsyncIterator[CounterApp]:
    registry = CollectorRegistry()
    options = {"redis_timeout": 0.25, "redis_retry_interval": 0.2, **options}
    storage = TieredStorage(redis_url, registry=registry, **options)
    client = TestClient(TestServer(counter_app(storage)))
    await client.start_server()
    try:
        yield CounterApp(client, storage, registry)
    finally:
        await client.close()
