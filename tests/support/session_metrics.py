"""Helpers for the session-metrics tests: a whole app on its own registry, polling, SSE reading."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.monitoring.runtime import Runtime
from exporter.web import create_app
from exporter.web.keys import LIFECYCLE

FAST = {
    "snapshot_interval": 0.2,
    "health_interval": 0.5,
    "probe_interval": 0.3,
    "redis_timeout": 0.25,
    "redis_retry_interval": 0.2,
}


@dataclass
class App:
    client: TestClient[web.Request, web.Application]
    registry: CollectorRegistry

    @property
    def app(self) -> web.Application:
        server = self.client.server
        assert isinstance(server, TestServer)
        return server.app

    @property
    def runtime(self) -> Runtime:
        runtime = self.app[LIFECYCLE].runtime
        assert runtime is not None
        return runtime

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.registry.get_sample_value(f"session_exporter_{name}", labels or {})
        assert value is not None, f"no sample session_exporter_{name}{labels or ''}"
        return value

    async def json(self, path: str, status: int = 200, method: str = "GET", **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        body = await response.read()
        assert response.status == status, (path, response.status, body[:500])
        return orjson.loads(body) if body else None


@asynccontextmanager
async def running_app(**settings: Any) -> AsyncIterator[App]:
    registry = CollectorRegistry()
    app = create_app(parse_settings({**FAST, **settings}), registry=registry)
    async with TestClient(TestServer(app)) as client:
        yield App(client, registry)


async def wait_for(
    predicate: Callable[[], Awaitable[bool] | bool], timeout: float, interval: float = 0.02
) -> float:
    """Poll until `predicate()` is true; return the seconds it took, or fail after `timeout`."""
    started = time.monotonic()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@dataclass
class SseMessage:
    event: str
    data: Any
    id: str | None = None


@dataclass
class SseReader:
    """Parses a text/event-stream response into messages (comments counted as heartbeats)."""

    response: aiohttp.ClientResponse
    heartbeats: int = 0
    _buffer: dict[str, str] = field(default_factory=dict)

    async def next(self, timeout: float = 5.0) -> SseMessage:
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("stream ended")
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    self.heartbeats += 1
                elif line == "":
                    if "data" in self._buffer:
                        message = SseMessage(
                            self._buffer.get("event", "message"),
                            orjson.loads(self._buffer["data"]),
                            self._buffer.get("id"),
                        )
                        self._buffer = {}
                        return message
                else:
                    name, _, value = line.partition(":")
                    self._buffer[name] = value[1:] if value.startswith(" ") else value

    async def until(
        self, predicate: Callable[[SseMessage], bool], timeout: float = 5.0
    ) -> SseMessage:
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(0.01, deadline - time.monotonic()))
            if predicate(message):
                return message
