"""Several exporter replicas in one test process: each its own app, registry, Redis clients and
memory tier, served over HTTP by aiohttp's test server; plus an HTTP writer that remembers what
was acknowledged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.sessions.factory import SessionLayer
from exporter.sessions.session import session_key
from exporter.store.contract import decode_value
from exporter.web import create_app
from exporter.web.keys import LIFECYCLE
from tests.support.sessions import wait_for


@dataclass
class Replica:
    name: str
    http: TestClient[web.Request, web.Application]
    app: web.Application
    registry: CollectorRegistry

    @property
    def layer(self) -> SessionLayer:
        runtime = self.app[LIFECYCLE].runtime
        assert runtime is not None
        return runtime.sessions

    def sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(f"session_exporter_{name}", labels)
        assert value is not None, f"{self.name}: no series session_exporter_{name}{labels}"
        return value

    async def until_sample(self, name: str, value: float, timeout: float) -> None:
        """Wait until the unlabelled series `name` reads `value`; fail after `timeout`."""
        await wait_for(lambda: self.sample(name) == value, timeout)

    def event_types(self) -> list[str]:
        runtime = self.app[LIFECYCLE].runtime
        assert runtime is not None
        return [event.type for event in runtime.events.recent(1000)]

    async def create(self, data: dict[str, Any], ttl: float | None = None) -> str:
        body: dict[str, Any] = {"data": data}
        if ttl is not None:
            body["ttl_seconds"] = ttl
        response = await self.http.post("/api/sessions", json=body)
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])

    async def read(self, sid: str) -> tuple[int, dict[str, Any] | None]:
        response = await self.http.get(f"/api/sessions/{sid}")
        body = await response.json()
        return response.status, body.get("data") if response.status == 200 else None

    async def update(self, sid: str, data: dict[str, Any]) -> None:
        response = await self.http.put(f"/api/sessions/{sid}", json={"data": data})
        assert response.status == 200, await response.text()

    async def delete(self, sid: str) -> None:
        response = await self.http.delete(f"/api/sessions/{sid}")
        assert response.status == 204, await response.text()


@asynccontextmanager
async def replica(name: str, redis_url: str, **settings: Any) -> AsyncIterator[Replica]:
    values = {
        "redis_url": redis_url,
        "redis_timeout": 0.25,
        "redis_retry_interval": 0.2,
        "session_ttl": 120,
        **settings,
    }
    registry = CollectorRegistry()
    app = create_app(parse_settings(values), registry=registry)
    async with TestClient(TestServer(app)) as http:
        yield Replica(name, http, app, registry)


async def until_changes(
    reader: Replica, sid: str, expected: dict[str, Any] | None, timeout: float = 1.0
) -> float:
    """Read on `reader` until it returns `expected` (None: 404); seconds it took. Then read again
    a few times: once it has seen the new state, it must never go back."""
    started = time.monotonic()
    while True:
        status, data = await reader.read(sid)
        if (expected is None and status == 404) or (status == 200 and data == expected):
            break
        assert time.monotonic() - started < timeout, f"{reader.name} still returns {status} {data}"
        await asyncio.sleep(0.002)
    took = time.monotonic() - started
    for _ in range(20):
        status, data = await reader.read(sid)
        assert (status, data) == ((404, None) if expected is None else (200, expected))
    return took


@dataclass
class HttpWriter:
    """Creates and updates sessions through one replica until stopped; remembers the last
    acknowledged data per session, and every failed request."""

    target: Replica
    latest: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    writes: int = 0
    stopped: bool = False

    async def run(self) -> None:
        step = 0
        while not self.stopped:
            step += 1
            data = {"step": step}
            try:
                if step % 3 == 0 and self.latest:
                    sid = list(self.latest)[step % len(self.latest)]
                    path = f"/api/sessions/{sid}"
                    response = await self.target.http.put(path, json={"data": data})
                else:
                    response = await self.target.http.post("/api/sessions", json={"data": data})
                body = await response.json()
                if response.status not in (200, 201):
                    self.errors.append(f"{response.status} {body}")
                else:
                    self.latest[body["id"]] = data
                    self.writes += 1
            except Exception as exc:  # keep going: the test reports every failure
                self.errors.append(repr(exc))
            await asyncio.sleep(0.002)


def assert_latest_in_redis(get: Callable[[str], object], latest: dict[str, dict[str, Any]]) -> None:
    """Every acknowledged write's latest data is what Redis holds (`get` reads a raw key: a
    client's `get`, which answers bytes or None)."""
    assert latest
    for sid, data in latest.items():
        raw = get("sme:" + session_key(sid))
        assert isinstance(raw, bytes), f"session {sid} (acknowledged) is not in Redis"
        stored = decode_value(raw)
        assert stored is not None and orjson.loads(stored.payload)["data"] == data, sid


async def write_through_an_outage(
    writer: HttpWriter,
    target: Replica,
    kill: Callable[[], object],
    start: Callable[[], object],
    *,
    down_for: float = 0.6,
    failback_within: float = 15.0,
) -> None:
    """Keep `writer` going while a Redis server is killed and started again; wait for failback."""
    task = asyncio.create_task(writer.run())
    try:
        await wait_for(lambda: writer.writes >= 30, 10)
        kill()
        try:
            await wait_for(lambda: target.sample("store_fallback_active") == 1, 5)
            during = writer.writes
            await asyncio.sleep(down_for)
            assert writer.writes > during + 10, "writes stalled during the outage"
        finally:
            start()
        await wait_for(lambda: target.sample("store_fallback_active") == 0, failback_within)
        await wait_for(lambda: target.sample("coherence_tracking_active") == 1, failback_within)
        settled = writer.writes
        await wait_for(lambda: writer.writes >= settled + 10, 5)  # straight to Redis again
    finally:
        writer.stopped = True
        await task
