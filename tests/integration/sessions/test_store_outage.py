"""Redis killed (SIGKILL) under concurrent writers: no write fails, reads of memory-held sessions
keep working, unknown ids get StoreUnavailable (503), and after the restart the store fails back
within 2 s with every session written during the outage in Redis with its latest data."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import orjson
import pytest

from exporter.core import tasks
from exporter.core.errors import StoreUnavailable
from exporter.sessions.manager import SessionManager
from exporter.sessions.session import session_key
from exporter.store.contract import decode_value
from tests.support.redis_server import RedisServer
from tests.support.sessions import open_layer, wait_for


class Writer:
    """Creates and updates sessions in a loop; remembers the latest data and when it was written."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.latest: dict[str, dict[str, int]] = {}
        self.written_at: dict[str, float] = {}
        self.errors: list[BaseException] = []
        self.writes = 0
        self.stopped = False
        # Updates target sessions written since `since`: a SIGKILLed Redis without persistence
        # restarts empty, and sessions untouched since before the kill are gone with it.
        self.since = 0.0

    async def run(self) -> None:
        step = 0
        while not self.stopped:
            step += 1
            try:
                targets = [sid for sid, at in self.written_at.items() if at >= self.since]
                if step % 2 or not targets:
                    session = await self.manager.create({"step": step})
                else:
                    target = random.choice(targets)
                    session = await self.manager.update(target, {"step": step})
            except Exception as exc:  # the test fails on any error; keep going to see them all
                self.errors.append(exc)
            else:
                self.latest[session.id] = session.data
                self.written_at[session.id] = time.monotonic()
                self.writes += 1
            await asyncio.sleep(0.001)


async def test_sigkill_outage_no_write_fails_and_replay_restores_latest_data(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with open_layer(redis_url, redis_retry_interval=0.2) as layer:
        writer = Writer(layer.manager)
        task = asyncio.create_task(writer.run())
        try:
            await wait_for(lambda: writer.writes >= 30, 10)
            assert layer.sample("store_fallback_active") == 0
            killed_at = writer.since = time.monotonic()
            redis_server.kill()
            try:
                await wait_for(lambda: layer.sample("store_fallback_active") == 1, 5)
                during = writer.writes
                await wait_for(lambda: writer.writes >= during + 100, 10)
                assert layer.sample("store_backend_up", {"backend": "redis"}) == 0
                assert layer.sample("store_replay_pending") > 0

                held = max(writer.written_at, key=writer.written_at.__getitem__)
                assert (await layer.manager.get(held)).data == writer.latest[held]
                with pytest.raises(StoreUnavailable) as unavailable:
                    await layer.manager.get("no-such-session-anywhere")
                assert unavailable.value.retry_after >= 1
                assert str(unavailable.value).startswith("Redis unavailable (ConnectionError)")
            finally:
                redis_server.start()
            took = await wait_for(lambda: layer.sample("store_fallback_active") == 0, 2.0)
            assert took < 2.0
            await asyncio.sleep(0.05)  # a few writes after failback, straight to Redis
        finally:
            writer.stopped = True
            await task

        assert writer.errors == []
        client = redis_server.client()
        touched = [sid for sid, at in writer.written_at.items() if at >= killed_at]
        assert len(touched) > 50
        for sid in touched:
            raw = client.get("sme:" + session_key(sid))
            assert isinstance(raw, bytes), (
                f"session {sid} written during the outage is not in Redis"
            )
            stored = decode_value(raw)
            assert stored is not None
            assert orjson.loads(stored.payload)["data"] == writer.latest[sid]
        client.close()

        assert layer.sample("store_failovers_total") == 1
        assert layer.sample("store_replayed_total") >= 1
        assert layer.sample("store_replay_pending") == 0
        assert layer.sample("store_replay_dropped_total") == 0
        assert layer.sample("store_backend_up", {"backend": "redis"}) == 1
        assert (
            layer.sample(
                "operation_errors_total",
                {"manager": "session", "operation": "create", "error": "unavailable"},
            )
            == 0
        )
        types = layer.event_types()
        assert types.index("failover") < types.index("replay_done") < types.index("failback")


async def test_redis_down_at_start_up_starts_in_fallback_and_fails_back(
    redis_server: RedisServer, redis_url: str
) -> None:
    redis_server.kill()
    try:
        async with open_layer(redis_url, redis_retry_interval=0.2) as layer:
            assert layer.sample("store_fallback_active") == 1
            session = await layer.manager.create({"born": "offline"})
            redis_server.start()
            await wait_for(lambda: layer.sample("store_fallback_active") == 0, 2.0)
            await layer.store.clear_memory()
            assert (await layer.manager.get(session.id)).data == {"born": "offline"}
    finally:
        if redis_server.process is None or redis_server.process.poll() is not None:
            redis_server.start()


async def test_closing_while_tracking_is_re_established_stops_at_once(
    redis_server: RedisServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing cancels coherence wherever it is. redis-py on Python 3.11 may swallow that cancel
    (CPython gh-86296) while tracking is being set up again: coherence must not go on to watch
    the new channels, or close() waits for it (the repeat of cancel_and_wait, 5 s later)."""
    repeated: list[str] = []  # cancel_and_wait's warning, read from its own logger
    monkeypatch.setattr(tasks.log, "warning", lambda message, *args: repeated.append(message))
    redis_server.kill()
    try:
        async with open_layer(redis_url, redis_retry_interval=0.05) as layer:
            coherence = layer.layer.coherence
            assert coherence is not None
            looked_up = asyncio.Event()
            primaries = coherence.deployment.primaries

            async def swallowing_primaries() -> Any:
                looked_up.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(1)  # as redis-py's write when the cancel lands on it
                return await primaries()

            coherence.deployment.primaries = swallowing_primaries  # type: ignore[method-assign]
            redis_server.start()
            await asyncio.wait_for(looked_up.wait(), 5)
        assert repeated == []
    finally:
        if redis_server.process is None or redis_server.process.poll() is not None:
            redis_server.start()


async def test_http_clients_see_no_failed_write_and_503_only_for_unknown_ids(
    redis_server: RedisServer, redis_url: str
) -> None:
    from aiohttp.test_utils import TestClient, TestServer
    from prometheus_client import CollectorRegistry

    from exporter.core.settings import parse_settings
    from exporter.web import create_app

    registry = CollectorRegistry()
    settings = parse_settings(
        {"redis_url": redis_url, "redis_timeout": 0.25, "redis_retry_interval": 0.2}
    )

    def fallback() -> float | None:
        return registry.get_sample_value("session_exporter_store_fallback_active")

    async with TestClient(TestServer(create_app(settings, registry=registry))) as http:
        latest: dict[str, dict[str, int]] = {}
        statuses: list[int] = []
        stop = asyncio.Event()

        async def client_loop() -> None:
            step = 0
            while not stop.is_set():
                step += 1
                if step % 2 and latest:
                    sid = random.choice(list(latest))
                    response = await http.put(f"/api/sessions/{sid}", json={"data": {"step": step}})
                else:
                    response = await http.post("/api/sessions", json={"data": {"step": step}})
                statuses.append(response.status)
                if response.status in (200, 201):
                    body = await response.json()
                    latest[body["id"]] = body["data"]
                await asyncio.sleep(0.002)

        task = asyncio.create_task(client_loop())
        try:
            await wait_for(lambda: len(statuses) >= 20, 10)
            latest.clear()  # from here on, only sessions written during the outage are checked
            redis_server.kill()
            try:
                await wait_for(lambda: fallback() == 1, 5)
                await wait_for(lambda: len(latest) >= 30, 10)
                held = next(iter(latest))
                assert (await http.get(f"/api/sessions/{held}")).status == 200
                unknown = await http.get("/api/sessions/maybe-in-redis")
                assert unknown.status == 503
                assert int(unknown.headers["Retry-After"]) >= 1
                assert (await unknown.json())["error"]["code"] == "unavailable"
            finally:
                redis_server.start()
            assert await wait_for(lambda: fallback() == 0, 2.0) < 2.0
        finally:
            stop.set()
            await task

    assert set(statuses) <= {200, 201}, sorted(set(statuses))
    client = redis_server.client()
    for sid, data in latest.items():
        raw = client.get("sme:" + session_key(sid))
        assert isinstance(raw, bytes), raw
        stored = decode_value(raw)
        assert stored is not None and orjson.loads(stored.payload)["data"] == data
    client.close()
