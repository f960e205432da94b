"""A 2xx for a write is a promise: it survives any single failure, of Redis or of the exporter.

Real processes: the exporter as its console script (SIGKILLed or SIGTERMed during a Redis outage
and started again on the same --journal-dir), real redis-server processes (killed, restarted
with and without persistence, full), a real full disk under the journal (a size-capped tmpfs).
Every test counts the writes answered 2xx and checks each afterwards from a cold replica (a fresh
session layer: nothing in its memory tier).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.core.errors import JournalFull, SessionNotFound
from exporter.sessions.session import session_key
from exporter.store.contract import ReplayItem
from exporter.store.durable_journal import DurableJournal
from tests.integration.web.test_cli_serve import exporter_command
from tests.support.full_disk import small_disk
from tests.support.redis_server import RedisServer, free_port, start_redis
from tests.support.session_metrics import running_app
from tests.support.sessions import open_layer, redis_proxy, wait_for


@dataclass
class Acknowledged:
    """What the exporter answered 2xx for: the latest data per session, and deletes."""

    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
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
    stderr: Path | None = None  # appended to; else discarded
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
        if self.stderr is None:
            self.process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        else:
            with self.stderr.open("ab") as log:
                self.process = subprocess.Popen(command, env=env, stderr=log)

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

    def kill(self) -> None:
        """SIGKILL unless stopped already: what a failed test leaves running."""
        if self.process is not None and self.process.poll() is None:
            self.stop(signal.SIGKILL)

    async def fallback_active(self, http: aiohttp.ClientSession) -> bool:
        async with http.get(f"{self.base}/api/session-metrics/persistence") as response:
            return bool((await response.json())["redis"]["fallback_active"])

    async def pending(self, http: aiohttp.ClientSession) -> int:
        async with http.get(f"{self.base}/api/session-metrics/persistence") as response:
            return int((await response.json())["replay"]["pending"])

    async def metric(self, http: aiohttp.ClientSession, sample: str) -> float:
        """One sample of /metrics, by its name and labels as exposed (`name{label="value"}`)."""
        async with http.get(f"{self.base}/metrics") as response:
            text = await response.text()
        values = [
            line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(sample + " ")
        ]
        assert values, f"no sample {sample}"
        return float(values[0])

    async def health_issues(self, http: aiohttp.ClientSession) -> set[str]:
        async with http.get(f"{self.base}/api/session-metrics/health-check") as response:
            return {issue["code"] for issue in (await response.json())["issues"]}


async def wait_for_async(predicate: Callable[[], Awaitable[bool]], timeout: float) -> None:
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
def exporters() -> Iterator[Callable[..., Exporter]]:
    """`exporters(redis_url, journal, stderr=None)`: an Exporter killed at the end of the test if
    it still runs (a failed assertion must not leave processes, or files on a mounted disk)."""
    made: list[Exporter] = []

    def make(redis_url: str, journal: Path, stderr: Path | None = None) -> Exporter:
        made.append(Exporter(redis_url, journal, stderr))
        return made[-1]

    yield make
    for exporter in made:
        exporter.kill()


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


async def _has_issue(exporter: Exporter, http: aiohttp.ClientSession, code: str) -> bool:
    return code in await exporter.health_issues(http)


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
    redis_server: RedisServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
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

        async def counted(items: Sequence[ReplayItem]) -> list[bool]:
            sent.extend(item.key for item in items)
            return await replay(items)

        monkeypatch.setattr(redis_store, "replay", counted)
        redis_server.start()  # no persistence: empty
        assert await layer.store.recover_now()
        assert layer.sample("store_replayed_total") == 10
        assert layer.sample("store_reseeded_total") == 20
    everyone = {session_key(s.id) for s in held + journalled}
    assert sorted(sent) == sorted(everyone)  # each once
    acked = Acknowledged({s.id: s.data for s in held + journalled}, set())
    await acked.verify(redis_url)


async def write_until_refused(
    http: aiohttp.ClientSession, base: str, before: list[str], acked: Acknowledged
) -> set[str]:
    """Creates, updates and deletes during an outage until the journal refuses three in a row,
    each refusal a 503 `store_busy` with Retry-After. Returns the sessions journalled."""
    journalled: set[str] = set()
    live, refused_in_a_row, n = list(before), 0, 0
    while refused_in_a_row < 3:
        n += 1
        assert n < 5000, "the journal never refused a write"
        if n % 4 == 3 and len(live) > 5:
            sid = live.pop(0)
            method, url, body = "DELETE", f"{base}/api/sessions/{sid}", None
        elif n % 4 == 2:
            sid = live[n % len(live)]
            method, url, body = "PUT", f"{base}/api/sessions/{sid}", {"data": {"u": n}}
        else:
            sid, method, url, body = "", "POST", f"{base}/api/sessions", {"data": {"n": n}}
        async with http.request(method, url, json=body) as response:
            if response.status == 503:
                assert (await response.json())["error"]["code"] == "store_busy"
                assert float(response.headers["Retry-After"]) >= 1
                refused_in_a_row += 1
                continue
            assert response.status in (200, 201, 204), await response.text()
            refused_in_a_row = 0
            if method == "POST":
                sid = (await response.json())["id"]
                live.append(sid)
            if method == "DELETE":
                acked.latest.pop(sid)
                acked.deleted.add(sid)
            else:
                assert body is not None
                acked.latest[sid] = body["data"]
            journalled.add(sid)
    return journalled


async def test_a_full_journal_disk_then_a_sigkill_loses_no_acknowledged_write(
    persistent_redis: RedisServer, tmp_path: Path, exporters: Callable[..., Exporter]
) -> None:
    """The issue's scenario: the journal's disk fills during an outage, the replica is killed,
    started again on the still-full disk, then with space freed."""
    acked = Acknowledged()
    stderr = tmp_path / "stderr.log"
    with small_disk(256 * 1024) as disk:
        journal = disk.path / "journal"
        async with aiohttp.ClientSession() as http:
            exporter = exporters(persistent_redis.url, journal, stderr)
            await exporter.start(http)
            before = []
            for n in range(20):
                async with http.post(f"{exporter.base}/api/sessions", json={"data": {"b": n}}) as r:
                    assert r.status == 201
                    before.append((await r.json())["id"])
                    acked.latest[before[-1]] = {"b": n}
            disk.fill(leave=48 * 1024)
            persistent_redis.kill()
            try:
                journalled = await write_until_refused(http, exporter.base, before, acked)
                unwritable = "journal_unwritable"  # re-checked at once, by its event
                await wait_for_async(lambda: _has_issue(exporter, http, unwritable), 10)
                failures = 'session_exporter_store_journal_write_failures_total{reason="no_space"}'
                assert await exporter.metric(http, failures) >= 3
                exporter.stop(signal.SIGKILL)

                full = exporters(persistent_redis.url, journal, stderr)
                await full.start(http)  # on the still-full disk: the journal loads read-only
                assert await full.pending(http) == len(journalled)
                assert await full.metric(http, "session_exporter_store_journal_writable") == 0
                assert "journal_unwritable" in await full.health_issues(http)
                some = next(iter(journalled - acked.deleted))
                async with http.get(f"{full.base}/api/sessions/{some}") as response:
                    assert (await response.json())["data"] == acked.latest[some]
                big = {"data": {"blob": "x" * 8192}}  # more than any page's slack
                async with http.post(f"{full.base}/api/sessions", json=big) as response:
                    assert response.status == 503
                    assert (await response.json())["error"]["code"] == "store_busy"
                disk.free()
                async with http.post(f"{full.base}/api/sessions", json=big) as response:
                    assert response.status == 201  # taken again, without a restart
                    acked.latest[(await response.json())["id"]] = big["data"]
                full.stop(signal.SIGKILL)
            finally:
                persistent_redis.start()
            freed = exporters(persistent_redis.url, journal, stderr)
            await freed.start(http)
            try:
                await wait_for_async(lambda: _replayed(freed, http), 10)
            finally:
                assert freed.stop(signal.SIGTERM) == 0
    await acked.verify(persistent_redis.url)
    assert "Traceback" not in stderr.read_text()


async def test_a_damaged_journal_replays_every_intact_write_and_reports_the_lost_one(
    redis_server: RedisServer,
    redis_url: str,
    tmp_path: Path,
    exporters: Callable[..., Exporter],
) -> None:
    """Writes journalled during an outage (a replica cut off from Redis), bytes flipped in the
    middle of its journal, then an exporter started on it."""
    acked = Acknowledged()
    journal = tmp_path / "journal"
    async with (
        redis_proxy(redis_server.port) as proxy,
        open_layer(proxy.url, journal_dir=str(journal)) as cut,
    ):
        proxy.cut()
        for n in range(30):
            session = await cut.manager.create({"n": n})
            acked.latest[session.id] = session.data
        assert len(cut.store.journal) == 30  # closed still cut off: kept for the next start
    lost = list(acked.latest)[12]  # a record in the middle, with intact ones after it
    path = journal / "journal.log"
    data = bytearray(path.read_bytes())
    at = data.index(session_key(lost).encode()) + 40
    data[at : at + 4] = bytes(byte ^ 0xFF for byte in data[at : at + 4])
    path.write_bytes(bytes(data))
    del acked.latest[lost]

    async with aiohttp.ClientSession() as http:
        restarted = exporters(redis_url, journal)
        await restarted.start(http)
        try:
            await wait_for_async(lambda: _replayed(restarted, http), 10)
            corrupt = 'session_exporter_events_total{type="journal_corrupt"}'
            assert await restarted.metric(http, corrupt) == 1
            assert await restarted.metric(http, "session_exporter_store_journal_corrupt_files") == 1
            assert "journal_corrupt" in await restarted.health_issues(http)
        finally:
            restarted.stop(signal.SIGTERM)
    await acked.verify(redis_url)
    async with open_layer(redis_url) as cold:
        with pytest.raises(SessionNotFound):
            await cold.manager.get(lost)


def test_a_journal_directory_in_use_stops_the_start_up_in_one_line(tmp_path: Path) -> None:
    held = DurableJournal.open(tmp_path / "journal")  # this process holds the directory
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
    try:
        result = subprocess.run(
            [
                *exporter_command(),
                *("--listen", f"127.0.0.1:{free_port()}", "--redis-url", "redis://127.0.0.1:1"),
                *("--journal-dir", str(tmp_path / "journal")),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        held._release()
    assert result.returncode == 2, result.stderr
    assert f"invalid setting --journal-dir: journal directory {tmp_path / 'journal'} is in use" in (
        result.stderr
    )
    assert f"(pid {os.getpid()})" in result.stderr and "Traceback" not in result.stderr


async def test_a_replica_that_missed_the_epoch_redis_came_back_empty_in_re_seeds(
    persistent_redis: RedisServer,
) -> None:
    """B is cut off (in fallback). Redis restarts without its data (A begins the new epoch),
    then again from its append-only file (a third epoch, the data kept). B, back, must still
    re-seed: it last saw the data before it was lost (seed 11 round 3 of the torture run took
    that for "kept" and lost 6 writes)."""
    server = persistent_redis
    async with (
        redis_proxy(server.port) as proxy,
        open_layer(proxy.url) as b,
        open_layer(server.url) as a,
    ):
        session = await b.manager.create({"on": "b"})
        proxy.cut()
        await wait_for(lambda: b.sample("store_fallback_active") == 1, 5)
        server.kill()
        for child in server.workdir.iterdir():  # its disk lost: back empty
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        server.start()
        await wait_for(lambda: "epoch_changed" in a.event_types(), 10)  # A: lost, re-seeded
        server.kill()
        server.start()  # from its append-only file: the same data, another process
        await a.manager.create({"on": "a"})  # A follows (kept) and writes
        proxy.restore()
        await wait_for(lambda: b.sample("store_fallback_active") == 0, 10)
        client = server.client()
        assert client.get("sme:" + session_key(session.id)) is not None
        client.close()
