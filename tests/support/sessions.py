"""Helpers for the session-store tests: a session layer on a fresh registry, polling, and a TCP
proxy that cuts one replica off a real Redis (a network partition) while others still reach it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import SessionLayer, open_session_layer
from exporter.sessions.manager import SessionManager
from exporter.store.tiered_store import TieredStore


@dataclass
class Layer:
    """An opened session layer with the registry and event log it reports to."""

    layer: SessionLayer
    metrics: Metrics
    events: EventLog

    @property
    def manager(self) -> SessionManager:
        return self.layer.manager

    @property
    def store(self) -> TieredStore:
        return self.layer.store

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.metrics.registry.get_sample_value(f"session_exporter_{name}", labels or {})
        assert value is not None, f"no sample session_exporter_{name}{labels or ''}"
        return value

    def event_types(self) -> list[str]:
        return [event.type for event in self.events.recent(1000)]


@asynccontextmanager
async def open_layer(redis_url: str | None = None, **settings: Any) -> AsyncIterator[Layer]:
    values = {"redis_timeout": 0.25, "redis_retry_interval": 0.2, **settings}
    if redis_url is not None:
        values["redis_url"] = redis_url
    metrics = Metrics(CollectorRegistry())
    events = EventLog(1000, metrics)
    async with open_session_layer(parse_settings(values), metrics, events) as layer:
        yield Layer(layer, metrics, events)


async def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> float:
    """Poll until `predicate()`; return the seconds it took, or fail after `timeout`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
    return time.monotonic() - started


class RedisProxy:
    """A loopback TCP proxy in front of a real Redis. `cut()` drops every connection and refuses
    new ones (the replica behind it sees Redis vanish); `restore()` lets traffic through again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.cut_off = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> RedisProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def cut(self) -> None:
        self.cut_off = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.cut_off = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                if self.cut_off:
                    break
                sink.write(data)
                await sink.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            sink.transport.abort()
            self._writers.discard(sink)


@asynccontextmanager
async def redis_proxy(target_port: int) -> AsyncIterator[RedisProxy]:
    proxy = await RedisProxy(target_port).start()
    try:
        yield proxy
    finally:
        await proxy.close()
