"""A 2xx for a write is a promise: it survives any single failure, of Redis or of the exporter.

Real processes: the exporter as its console script (SIGKILLed or SIGTERMed during a Redis outage
and started again on the same --journal-dir), real redis-server processes (killed, restarted
with and without persistence, full). Every test counts the writes answered 2xx and checks each
afterwards from a cold replica (a fresh session layer: nothing in its memory tier).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from exporter.errors import JournalFull, SessionNotFound
from exporter.sessions.session import session_key
from tests.integration.web.test_cli_serve import exporter_command
from tests.support.redis_server import RedisServer, free_port, start_redis
from tests.support.session_metrics import running_app
from tests.support.sessions import open_layer, redis_proxy, wait_for


@dataclass
class Acknowledged:
    """What the exporter answered 2xx for: the latest data per session, and deletes."""

    latest: dict[str, dict[str, int]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    async def verify(self, redis_url: str) -> None:
        """From a cold replica: every acknowledged write there, every delete final."""
        async with open_layer(redis_url) as cold:
            await wait_for(lambda: cold.store.status().breaker_state == "closed", 5)
            for sid, data in self.latest.items():
                assert (await cold.manager.get(sid)).data == data, sid
            for sid in self.deleted:
                with pytest.raises(SessionNotFound):
                    await cold.manager.get(sid)


@dataclass
class Exporter:
    """The console script on a free port, against `redis_url`, journalling into `journal`."""

    redis_url: str
    journal: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, http: aiohttp.ClientSession) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
        command = [
            *exporter_command(),
            *("--listen", f"127.0.0.1:{self.port}", "--redis-url", self.redis_url),
            *("--journal-dir", str(self.journal), "--redis-retry-interval", "0.2"),
            *("--shutdown-timeout", "1"),
        ]
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)

        async def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, "exited"
            try:
                async with http.get(f"{self.base}/-/ready") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_for_async(ready, 20)

    def stop(self, signum: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(20)

    async def fallback_active(self, http: aiohttp.ClientSession) -> bool:
        async with http.get(f"{self.base}/api/session-metrics/persistence") as response:
            return bool((await response.json())["redis"]["fallback_active"])

    async def pending(self, http: aiohttp.ClientSession) -> int:
        async with http.get(f"{self.base}/api/session-metrics/persistence") as response:
            return int((await response.json())["replay"]["pending"])


async def wait_for_async(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def write_during_an_outage(
    http: aiohttp.ClientSession, base: str, before: list[str], acked: Acknowledged
) -> None:
    """Creates, updates of sessions from before the outage, deletes of both: counted when 2xx."""
    fresh: list[str] = []
    for n in range(60):
        async with http.post(f"{base}/api/sessions", json={"data": {"n": n}}) as response:
            assert response.status == 201, await response.text()
            sid = (await response.json())["id"]
            acked.latest[sid] = {"n": n}
            fresh.append(sid)
    for n, sid in enumerate(before[:10]):
        async with http.put(f"{base}/api/sessions/{sid}", json={"data": {"u": n}}) as response:
            assert response.status == 200, await response.text()
            acked.latest[sid] = {"u": n}
    for sid in [*before[10:15], *fresh[:5]]:
        async with http.delete(f"{base}/api/sessions/{sid}") as response:
            assert response.status == 204, await response.text()
            acked.latest.pop(sid)
            acked.deleted.add(sid)


@pytest.fixture
async def persistent_redis() -> AsyncIterator[RedisServer]:
    server = start_redis(("--appendonly", "yes", "--appendfsync", "always"))
    yield server
    server.stop()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_the_exporter_dying_during_an_outage_loses_no_acknowledged_write(
    persistent_redis: RedisServer, tmp_path: Path, signum: signal.Signals
) -> None:
    acked = Acknowledged()
    exporter = Exporter(persistent_redis.url, tmp_path / "journal")
    async with aiohttp.ClientSession() as http:
        await exporter.start(http)
        before = []
        for n in range(20):
            async with http.post(f"{exporter.base}/api/sessions", json={"data": {"b": n}}) as r:
                assert r.status == 201
                sid = (await r.json())["id"]
                before.append(sid)
                acked.latest[sid] = {"b": n}
        persistent_redis.kill()
        try:
            await write_during_an_outage(http, exporter.base, before, acked)
            assert await exporter.fallback_active(http)
            assert await exporter.pending(http) > 0
            exporter.stop(signum)  # SIGTERM: Redis still down, the rest stays in the journal
        finally:
            persistent_redis.start()
        restarted = Exporter(persistent_redis.url, tmp_path / "journal")
        await restarted.start(http)
        try:
            await wait_for_async(lambda: _replayed(restarted, http), 10)
        finally:
            restarted.stop(signal.SIGTERM)
    await acked.verify(persistent_redis.url)


async def _replayed(exporter: Exporter, http: aiohttp.ClientSession) -> bool:
    return await exporter.pending(http) == 0 and not await exporter.fallback_active(http)


async def test_a_full_journal_refuses_before_acknowledging(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    acked = Acknowledged()
    async with (
        redis_proxy(redis_server.port) as proxy,
        open_layer(proxy.url, replay_max_entries=5, journal_dir=str(tmp_path)) as cut,
    ):
        await cut.manager.create({"warm": True})
        proxy.cut()
        refused = 0
        for n in range(8):
            try:
                session = await cut.manager.create({"n": n})
            except JournalFull as exc:
                assert exc.code == "store_busy" and exc.retry_after >= 1
                refused += 1
            else:
                acked.latest[session.id] = session.data
        assert (len(acked.latest), refused) == (5, 3)
        assert cut.sample("store_replay_dropped_total") == 0
        proxy.restore()
        assert await cut.store.recover_now()
    await acked.verify(redis_url)


async def test_memory_only_never_evicts_a_session_it_acknowledged() -> None:
    async with running_app(memory_max_entries=30) as app:
        created, full = [], None
        for n in range(40):
            response = await app.client.post("/api/sessions", json={"data": {"n": n}})
            if response.status == 507:
                full = await response.json()
                break
            assert response.status == 201
            created.append((await response.json())["id"])
        assert full is not None and full["error"]["code"] == "store_full"
        assert len(created) == 30
        for sid in created:
            assert (await app.client.get(f"/api/sessions/{sid}")).status == 200
        errors = {"manager": "session", "operation": "create", "error": "full"}
        assert app.sample("operation_errors_total", errors) == 1


async def test_a_redis_restarted_empty_is_reseeded_from_memory_and_deletes_stay_deleted(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with open_layer(redis_url) as layer:
        kept = [await layer.manager.create({"n": n}) for n in range(30)]
        gone = kept.pop()
        redis_server.kill()
        await layer.manager.delete(gone.id)  # journalled during the outage
        redis_server.start()  # no persistence: empty
        assert await layer.store.recover_now()
        assert layer.sample("store_reseeded_total") == 30 - 1
        assert "reseeded" in layer.event_types()
    acked = Acknowledged({s.id: s.data for s in kept}, {gone.id})
    await acked.verify(redis_url)


async def test_a_recovery_into_an_empty_redis_sends_each_session_once(
    redis_server: RedisServer, redis_url: str
) -> None:
    """The replay writes what was journalled; the re-seed then writes only the rest of what
    memory holds, not the replayed sessions a second time (that doubled the recovery's work)."""
    async with open_layer(redis_url) as layer:
        held = [await layer.manager.create({"held": n}) for n in range(20)]
        redis_server.kill()
        journalled = [await layer.manager.create({"journalled": n}) for n in range(10)]
        redis_store = layer.store.redis
        assert redis_store is not None
        sent: list[str] = []
        replay = redis_store.replay

        async def counted(items):  # type: ignore[no-untyped-def]
            sent.extend(item.key for item in items)
            return await replay(items)

        redis_store.replay = counted  # type: ignore[method-assign]
        redis_server.start()  # no persistence: empty
        assert await layer.store.recover_now()
        assert layer.sample("store_replayed_total") == 10
        assert layer.sample("store_reseeded_total") == 20
    everyone = {session_key(s.id) for s in held + journalled}
    assert sorted(sent) == sorted(everyone)  # each once
    acked = Acknowledged({s.id: s.data for s in held + journalled}, set())
    await acked.verify(redis_url)
