"""Two replicas over HTTP on one real Redis that is killed, restarted and hung under load.

- One outage is one failover on each replica, and once a replica's fallback is over it answers
  no 503 for a session Redis holds (stale pooled sockets are not a second outage).
- No 404 for a session acknowledged by either replica, while the other may still be replaying.
- A DELETE acknowledged on one replica wins over a PUT the other accepted in the same outage.
- A write landing just after a replica's replay reaches that replica's memory tier.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import pytest

from exporter.sessions.session import session_key
from exporter.store.contract import ReplayItem, StoredValue
from tests.support.redis_server import RedisServer, start_redis
from tests.support.replicas import Replica, replica, until_changes
from tests.support.sessions import wait_for


@pytest.fixture
async def persistent_redis() -> AsyncIterator[RedisServer]:
    """A server that keeps what it acknowledged across SIGKILL (AOF, fsync on every write)."""
    server = start_redis(("--appendonly", "yes", "--appendfsync", "always"))
    yield server
    server.stop()


@dataclass
class Load:
    """Workers reading sessions Redis holds and creating new ones through one replica; a 503 is
    wrong unless the replica's fallback was active when the request started or ended."""

    target: Replica
    known: list[str]
    wrong: list[str] = field(default_factory=list)
    requests: int = 0
    stopped: bool = False

    def in_fallback(self) -> bool:
        return self.target.sample("store_fallback_active") == 1

    async def run(self, worker: int) -> None:
        step = 0
        while not self.stopped:
            step += 1
            before = self.in_fallback()
            if step % 4 == 0:
                response = await self.target.http.post("/api/sessions", json={"data": {}})
                expected = {201}
            else:
                sid = self.known[(worker * 7 + step) % len(self.known)]
                response = await self.target.http.get(f"/api/sessions/{sid}")
                expected = {200}
            status = response.status
            body = await response.read()
            if status not in expected and not (status == 503 and (before or self.in_fallback())):
                self.wrong.append(f"{self.target.name}: {status} {body[:200]!r}")
            self.requests += 1
            await asyncio.sleep(0.002)


async def test_three_restarts_under_load_are_three_failovers_on_each_replica(
    persistent_redis: RedisServer,
) -> None:
    url = persistent_redis.url
    async with replica("A", url) as a, replica("B", url) as b:
        known = [await a.create({"n": n}) for n in range(20)]
        known += [await b.create({"n": n}) for n in range(20)]
        loads = [Load(a, known), Load(b, known)]
        workers = [asyncio.create_task(load.run(n)) for load in loads for n in range(8)]
        try:
            for outage in range(1, 4):
                await asyncio.sleep(0.3)
                persistent_redis.kill()
                for side in (a, b):
                    await side.until_sample("store_fallback_active", 1, 5)
                await asyncio.sleep(0.3)
                persistent_redis.start()
                for side in (a, b):
                    await side.until_sample("store_fallback_active", 0, 10)
                    assert side.sample("store_failovers_total") == outage, side.name
            settled = [load.requests for load in loads]
            await wait_for(
                lambda: all(ld.requests > s + 50 for ld, s in zip(loads, settled, strict=True)), 10
            )
        finally:
            for load in loads:
                load.stopped = True
            await asyncio.gather(*workers)
        for side in (a, b):
            assert side.sample("store_failovers_total") == 3, side.name
        assert [wrong for load in loads for wrong in load.wrong] == []


async def test_a_hung_redis_never_gives_a_404_for_a_session_acknowledged_anywhere(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with replica("A", redis_url) as a, replica("B", redis_url) as b:
        await a.create({"before": "hang"})
        redis_server.pause()
        try:
            during = [await a.create({"on": "A", "n": n}) for n in range(15)]  # journalled
            during += [await b.create({"on": "B", "n": n}) for n in range(15)]
            for side in (a, b):
                assert side.sample("store_fallback_active") == 1
        finally:
            redis_server.resume()
        statuses: dict[int, int] = {}

        async def read_all() -> bool:
            done = True
            for side in (a, b):
                for sid in during:
                    status, _ = await side.read(sid)
                    statuses[status] = statuses.get(status, 0) + 1
                    done = done and status == 200
            return done

        deadline = asyncio.get_running_loop().time() + 15
        while not await read_all():  # from the first moment on: 200 or 503, never 404
            assert 404 not in statuses, statuses
            assert asyncio.get_running_loop().time() < deadline, statuses
        assert 404 not in statuses and set(statuses) <= {200, 503}, statuses


async def test_a_delete_on_one_replica_wins_over_a_put_on_the_other_in_one_outage(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with replica("A", redis_url) as a, replica("B", redis_url) as b:
        sid = await a.create({"v": 0})
        assert (await b.read(sid))[0] == 200  # both memory tiers hold a copy
        redis_server.pause()
        try:
            await a.delete(sid)  # 204, journalled
            await b.update(sid, {"v": 1})  # 200, journalled (B cannot know of the delete yet)
        finally:
            redis_server.resume()
        for side in (a, b):
            await side.until_sample("store_fallback_active", 0, 10)
        for side in (a, b):
            status, _ = await side.read(sid)
            while status == 503:  # the other replica may still be replaying
                await asyncio.sleep(0.05)
                status, _ = await side.read(sid)
            assert status == 404, side.name
            response = await side.http.put(f"/api/sessions/{sid}", json={"data": {"v": 2}})
            assert response.status == 404, side.name


async def test_a_replica_that_only_reads_while_redis_refuses_writes_never_gives_a_404(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Out of memory: A journals a create, and its record cannot say so (Redis refuses that write
    too). B has written nothing since the refusal began: its miss must still not be final."""
    client = redis_server.client()
    async with replica("A", redis_url) as a, replica("B", redis_url) as b:
        await a.create({"before": "refusal"})
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        try:
            sid = await a.create({"during": "refusal"})  # 201: journalled
            assert a.sample("store_writes_refused", reason="oom") == 1
            status, _ = await b.read(sid)
            assert status == 503  # not 404: A may (and does) hold it unreplayed
            assert b.sample("store_writes_refused", reason="oom") == 1
        finally:
            client.config_set("maxmemory", "0")
        for side in (a, b):
            await wait_for(partial(accepts_writes, side), 10)
        for side in (a, b):
            status, data = await side.read(sid)
            while status == 503:  # A replays within a retry interval
                await asyncio.sleep(0.05)
                status, data = await side.read(sid)
            assert (status, data) == (200, {"during": "refusal"}), side.name
    client.close()


def accepts_writes(side: Replica) -> bool:
    return side.sample("store_writes_refused", reason="oom") == 0


async def test_a_write_landing_just_after_a_replay_is_not_missed_by_the_replayer(
    redis_server: RedisServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replays a create journalled during a refusal; B's update lands right after it, before
    A's check of its replay's echo reads Redis, while A's journal still holds the entry. Redis
    tells A nothing of B's write (the echo used up A's registration of the key), and the check
    serves A's copy (the journal's replay settles it): A must look again once the entry is
    replayed, not serve its own copy for good (seed 13 round 5 of the torture run)."""
    client = redis_server.client()
    async with replica("A", redis_url) as a, replica("B", redis_url) as b:
        store = a.layer.store
        assert store.recovery is not None and store.parking is not None
        replayer, tracked = store.recovery.replay, store.parking.tracked
        replay, get_many = replayer.redis.replay, tracked.get_many
        key = ""
        sent, landed = asyncio.Event(), asyncio.Event()

        async def replay_then_hold_the_entry(items: Sequence[ReplayItem]) -> list[bool]:
            ours = any(item.key == key for item in items)
            if ours:
                sent.set()  # the next check of the key is that of the replay's echo
            written = await replay(items)
            if ours:
                await asyncio.wait_for(landed.wait(), 10)  # the journal holds it until then
            return written

        async def b_writes_first(keys: Sequence[str]) -> tuple[list[StoredValue | None], bool]:
            if key in keys and sent.is_set() and not landed.is_set():
                await wait_for(partial(accepts_writes, b), 10)
                await b.update(sid, {"v": 2})
                landed.set()
            return await get_many(keys)

        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        try:
            sid = await a.create({"v": 1})  # 201: journalled
            key = session_key(sid)
            monkeypatch.setattr(replayer.redis, "replay", replay_then_hold_the_entry)
            monkeypatch.setattr(tracked, "get_many", b_writes_first)
        finally:
            client.config_set("maxmemory", "0")
        await asyncio.wait_for(landed.wait(), 10)
        await wait_for(lambda: a.sample("store_replay_pending") == 0, 10)
        await until_changes(a, sid, {"v": 2})
    client.close()
