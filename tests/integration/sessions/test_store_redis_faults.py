"""A healthy or recovering Redis is never mistaken for a dead one (real redis-server processes).

- Waiting for a pooled connection (or a slot of the tracking lane, bounded alike) is
  backpressure (StoreBusy, 503 store_busy), not an outage.
- One restart is one failover: sockets pooled before it are dropped or retried once, never
  counted as a second outage; once the fallback ends, no read fails.
- A Redis that answers but refuses writes (read-only replica, maxmemory + noeviction) is its own
  state: reads are served from Redis, writes journalled and replayed once it accepts them.
- A delete is final, also against a replayed update of another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from exporter.core.errors import SessionNotFound, StoreBusy, StoreUnavailable
from exporter.sessions.session import session_key
from exporter.store.contract import StoredValue
from exporter.store.redis_client import WaitingConnectionPool
from exporter.store.tracking import Lane
from tests.support.redis_server import RedisServer, start_redis
from tests.support.sessions import Layer, open_layer, redis_proxy, wait_for


def waiting_pool(layer: Layer) -> WaitingConnectionPool:
    """The standalone Redis client's pool, which queues callers for a free connection."""
    client = layer.layer.redis
    assert isinstance(client, Redis), client
    pool = client.connection_pool
    assert isinstance(pool, WaitingConnectionPool), pool
    return pool


async def test_hundreds_of_concurrent_cold_reads_and_creates_are_no_outage(
    redis_url: str,
) -> None:
    async with open_layer(redis_url) as writer, open_layer(redis_url) as reader:
        ids = [
            s.id
            for s in await asyncio.gather(*(writer.manager.create({"n": n}) for n in range(300)))
        ]
        results = await asyncio.gather(
            *(reader.manager.get(sid) for sid in ids),  # cold: the reader's memory holds none
            *(reader.manager.create({"n": n}) for n in range(300)),
            return_exceptions=True,
        )
        assert [r for r in results if isinstance(r, BaseException)] == []
        for layer in (writer, reader):
            assert layer.sample("store_failovers_total") == 0
            assert layer.sample("store_fallback_active") == 0


def lane(layer: Layer) -> Lane:
    """The tracking lane session reads and writes go through (bounded like the pool)."""
    coherence = layer.layer.coherence
    assert coherence is not None
    found = coherence.lanes.lane()
    assert found is not None
    return found


async def test_no_free_connection_in_time_is_busy_for_that_request_only(redis_url: str) -> None:
    async with open_layer(redis_url, redis_max_connections=1, redis_pool_timeout=0.05) as layer:
        session = await layer.manager.create({"a": 1})
        await layer.store.clear_memory()
        pool = waiting_pool(layer)
        held = await pool.get_connection()  # the only connection, taken
        await lane(layer).slots.acquire()  # and the lane's only slot
        try:
            with pytest.raises(StoreBusy) as busy:
                await layer.manager.get(session.id)
            assert busy.value.code == "store_busy"
            with pytest.raises(StoreBusy):
                await layer.manager.update(session.id, {"a": 2})
        finally:
            await pool.release(held)
            lane(layer).slots.release()
        assert (await layer.manager.get(session.id)).data == {"a": 1}
        assert layer.sample("store_failovers_total") == 0
        assert layer.sample("store_fallback_active") == 0
        errors = {"manager": "session", "operation": "get", "error": "busy"}
        assert layer.sample("operation_errors_total", errors) == 1


async def test_a_caller_waiting_for_a_connection_gets_the_one_released(redis_url: str) -> None:
    async with open_layer(redis_url, redis_max_connections=1, redis_pool_timeout=10.0) as layer:
        session = await layer.manager.create({"a": 1})
        await layer.store.clear_memory()
        pool, slots = waiting_pool(layer), lane(layer).slots
        held = await pool.get_connection()
        await slots.acquire()
        read = asyncio.ensure_future(layer.manager.get(session.id))
        await wait_for(lambda: bool(slots._waiters), 5.0)  # queued for the lane's one slot
        assert not read.done()
        await pool.release(held)
        slots.release()
        assert (await asyncio.wait_for(read, 5.0)).data == {"a": 1}
        assert not pool._waiters and not slots._waiters


async def test_stale_pooled_connections_after_a_restart_are_one_failover(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Deterministic: 40 pooled sockets, all dead after the restart; recovery and the next 40
    concurrent reads reuse none of them as evidence of a new outage."""
    async with open_layer(redis_url, redis_retry_interval=30) as layer:
        sessions = [await layer.manager.create({"n": n}) for n in range(40)]
        await layer.store.clear_memory()
        await asyncio.gather(*(layer.manager.get(s.id) for s in sessions))  # 40 pooled sockets
        await layer.store.clear_memory()
        redis_server.kill()
        with pytest.raises(StoreUnavailable):
            await layer.manager.get(sessions[0].id)  # the outage noticed: failover 1
        redis_server.start()  # without persistence: empty
        assert await layer.store.recover_now()
        fresh = [await layer.manager.create({"n": n}) for n in range(40)]
        await layer.store.clear_memory()
        read = await asyncio.gather(*(layer.manager.get(s.id) for s in fresh))
        assert [s.data for s in read] == [{"n": n} for n in range(40)]
        assert layer.sample("store_failovers_total") == 1
        assert layer.sample("store_fallback_active") == 0


async def test_a_failure_reported_after_the_failback_is_not_a_second_outage(
    redis_server: RedisServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call that failed during an outage may report it late: on a Cluster, redis-py waits
    0.25 s (twice) on CLUSTERDOWN before raising, and the failback can land meanwhile. Taken for
    a new outage, that late failure served a fallback from the memory tier the failback had just
    flushed: 503 for every session it held, until the next retry. Here the failure of a real call
    to the killed Redis is held back until the failback is done."""
    async with open_layer(redis_url, redis_retry_interval=30) as layer:
        updated, other = await layer.manager.create({"a": 1}), await layer.manager.create({"b": 1})
        tracked = layer.store.tracked
        assert tracked is not None
        real_set, failback_done = tracked.set, asyncio.Event()

        async def set_failing_late(key: str, value: StoredValue, *, replace: bool = False) -> Any:
            try:
                return await real_set(key, value, replace=replace)
            except StoreUnavailable:
                await failback_done.wait()
                raise

        monkeypatch.setattr(tracked, "set", set_failing_late)
        redis_server.kill()
        late = asyncio.create_task(layer.manager.update(updated.id, {"a": 2}))
        await wait_for(lambda: layer.sample("store_fallback_active") == 1, 5.0)  # coherence saw it
        redis_server.start()  # without persistence: empty, re-seeded from memory
        assert await layer.store.recover_now()
        failback_done.set()
        assert (await late).data == {"a": 2}
        assert (await layer.manager.get(other.id)).data == {"b": 1}
        assert (await layer.manager.get(updated.id)).data == {"a": 2}
        assert layer.sample("store_failovers_total") == 1
        assert layer.sample("store_fallback_active") == 0


async def test_a_redis_cut_and_restored_under_load_is_one_failover_each_time(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Three partitions under concurrent load: failovers go up by exactly three, and once the
    fallback is over no request fails."""
    async with redis_proxy(redis_server.port) as proxy, open_layer(proxy.url) as layer:
        ids = [(await layer.manager.create({"n": n})).id for n in range(50)]
        failures_after_failback: list[BaseException] = []
        stop = asyncio.Event()

        async def load(worker: int) -> None:
            step = 0
            while not stop.is_set():
                step += 1
                healthy = layer.sample("store_fallback_active") == 0
                try:
                    if step % 3 == 0:
                        await layer.manager.create({"w": worker})
                    else:
                        if step % 7 == 0:  # reads of Redis too, not only of memory
                            await layer.store.clear_memory()
                        await layer.manager.get(ids[(worker + step) % len(ids)])
                except StoreUnavailable as exc:
                    if healthy and layer.sample("store_fallback_active") == 0:
                        failures_after_failback.append(exc)
                await asyncio.sleep(0.001)

        workers = [asyncio.create_task(load(n)) for n in range(30)]
        try:
            # Bounds far from the claim under test (one failover per cut, no failure after
            # failback): with both CPUs busy beside 30 workers, a failback once took over 5 s
            # (1 run in 13, before and after this stop's changes). Its speed is the bench's.
            for round_ in range(1, 4):
                await asyncio.sleep(0.3)
                proxy.cut()
                await wait_for(lambda: layer.sample("store_fallback_active") == 1, 20)
                await asyncio.sleep(0.2)
                proxy.restore()
                await wait_for(lambda: layer.sample("store_fallback_active") == 0, 20)
                assert layer.sample("store_failovers_total") == round_
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        assert layer.sample("store_failovers_total") == 3
        assert failures_after_failback == []


@contextlib.asynccontextmanager
async def _replica_of_empty_master() -> AsyncIterator[tuple[RedisServer, RedisServer]]:
    master = start_redis()
    replica = start_redis()
    try:
        client = replica.client()
        client.replicaof("127.0.0.1", master.port)
        await wait_for(lambda: client.info("replication")["master_link_status"] == "up", 10)
        yield master, replica
    finally:
        master.stop()
        replica.stop()


async def test_a_read_only_redis_refuses_writes_reads_still_served_then_replayed() -> None:
    async with (
        _replica_of_empty_master() as (master, replica),
        open_layer(replica.url) as layer,
    ):
        # A session written through the master (by another replica of ours) reaches the
        # read-only one by replication; this layer reads it from Redis.
        async with open_layer(master.url) as other:
            existing = await other.manager.create({"from": "master"})
        check = replica.client()
        await wait_for(lambda: check.exists(f"sme:s:{{{existing.id}}}") == 1, 5)
        created = await layer.manager.create({"during": "readonly"})  # journalled: 201
        status = layer.store.status()
        assert status.writes_refused == "readonly" and not status.fallback_active
        assert layer.sample("store_writes_refused", {"reason": "readonly"}) == 1
        assert layer.sample("store_failovers_total") == 0
        await layer.store.clear_memory()
        assert (await layer.manager.get(existing.id)).data == {"from": "master"}
        assert (await layer.manager.get(created.id)).data == {"during": "readonly"}
        assert "writes_refused" in layer.event_types()

        check.replicaof("no", "one")  # promoted: writes accepted again
        assert await layer.store.recover_now()
        assert layer.sample("store_writes_refused", {"reason": "readonly"}) == 0
        assert "writes_accepted" in layer.event_types()
        assert check.exists(f"sme:s:{{{created.id}}}") == 1
        check.close()


async def test_a_session_still_in_the_journal_as_redis_comes_back_can_be_updated_and_deleted(
    redis_server: RedisServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions created while the replay runs are journalled; once the refusal is over they wait
    for the next round. An update or a delete meanwhile must join them in the journal, not find
    nothing in Redis (a 404 for a session just acknowledged: torture seed 11, round 17)."""
    client = redis_server.client()
    async with open_layer(redis_url) as layer:
        recovery = layer.store.recovery
        assert recovery is not None
        replay = recovery.replay
        replay_all = replay.replay_all
        created: list[str] = []

        async def creating_meanwhile() -> tuple[int, int]:
            done = await replay_all()
            created.extend([(await layer.manager.create({"n": n})).id for n in range(2)])
            return done

        monkeypatch.setattr(replay, "replay_all", creating_meanwhile)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        try:
            await layer.manager.create({"refused": True})
        finally:
            client.config_set("maxmemory", "0")
        assert not await layer.store.recover_now()  # accepted again; two creates journalled
        assert layer.store.status().writes_refused is None and len(created) == 2
        monkeypatch.setattr(replay, "replay_all", replay_all)
        kept, gone = created
        await layer.manager.update(kept, {"n": "updated"})
        await layer.manager.delete(gone)
        assert await layer.store.recover_now()
        await layer.store.clear_memory()
        assert (await layer.manager.get(kept)).data == {"n": "updated"}
        with pytest.raises(SessionNotFound):
            await layer.manager.get(gone)
    client.close()


async def test_an_out_of_memory_redis_refuses_writes_and_loses_none(
    redis_server: RedisServer, redis_url: str
) -> None:
    client = redis_server.client()
    async with open_layer(redis_url) as layer:
        before = await layer.manager.create({"before": True})
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        try:
            written = [await layer.manager.create({"n": n}) for n in range(20)]
            assert layer.store.status().writes_refused == "oom"
            assert layer.sample("store_fallback_active") == 0
            await layer.store.clear_memory()
            assert (await layer.manager.get(before.id)).data == {"before": True}
        finally:
            client.config_set("maxmemory", "0")
        assert await layer.store.recover_now()
        await layer.store.clear_memory()
        for session in written:
            assert (await layer.manager.get(session.id)).data == session.data
        assert layer.sample("store_failovers_total") == 0
    client.close()


async def test_too_few_replicas_refuses_writes_but_reads_and_updates_go_on(
    redis_server: RedisServer, redis_url: str
) -> None:
    """`min-replicas-to-write` unmet: Redis answers NOREPLICAS to writes and still serves reads.
    That is a refusal, not an outage: reads of sessions this replica does not hold come from
    Redis (no 503), an update or a delete of a live session is journalled (never a 404), and
    everything is replayed once writes are accepted again."""
    client = redis_server.client()
    async with open_layer(redis_url) as layer:
        sessions = [await layer.manager.create({"n": n}) for n in range(6)]
        client.config_set("min-replicas-to-write", 1)  # and this server has none
        try:
            await layer.store.clear_memory()
            for session in sessions:  # from Redis: no fallback, no 503
                assert (await layer.manager.get(session.id)).data == session.data
            await layer.manager.update(sessions[0].id, {"n": 0, "updated": True})
            assert layer.store.status().writes_refused == "noreplicas"
            assert layer.sample("store_fallback_active") == 0
            await layer.manager.delete(sessions[1].id)
            created = await layer.manager.create({"during": "noreplicas"})
            await layer.store.clear_memory()
            assert (await layer.manager.get(sessions[2].id)).data == sessions[2].data
        finally:
            client.config_set("min-replicas-to-write", 0)
        assert await layer.store.recover_now()
        await layer.store.clear_memory()
        assert (await layer.manager.get(sessions[0].id)).data == {"n": 0, "updated": True}
        with pytest.raises(SessionNotFound):
            await layer.manager.get(sessions[1].id)
        assert (await layer.manager.get(created.id)).data == {"during": "noreplicas"}
        assert layer.sample("store_failovers_total") == 0
    client.close()


async def test_a_delete_acknowledged_anywhere_is_final(
    redis_server: RedisServer, redis_url: str
) -> None:
    """B deletes live; A, cut off, holds a copy and accepts updates; after A's replay the session
    stays deleted on both, and later updates get 404."""
    async with (
        redis_proxy(redis_server.port) as proxy,
        open_layer(proxy.url, redis_retry_interval=30) as a,
        open_layer(redis_url) as b,
    ):
        session = await a.manager.create({"v": 0})
        await b.manager.get(session.id)
        proxy.cut()
        await a.manager.update(session.id, {"v": 1})  # finds Redis gone: journalled
        await b.manager.delete(session.id)
        await a.manager.update(session.id, {"v": 2})
        proxy.restore()
        assert await a.store.recover_now()
        for side in (a, b):
            await side.store.clear_memory()
            with pytest.raises(SessionNotFound):
                await side.manager.get(session.id)
            with pytest.raises(SessionNotFound):
                await side.manager.update(session.id, {"v": 3})


async def test_a_late_echo_during_a_fallback_never_hides_our_own_write(
    redis_server: RedisServer, redis_url: str
) -> None:
    """The interleaving behind a flaky replay test, made deterministic: the invalidation of our
    own write arrives after the fallback began (the listener drained its buffer late). The write
    is what the fallback serves: an update of it must succeed from memory, never 503."""
    async with open_layer(redis_url, redis_retry_interval=30) as layer:
        session = await layer.manager.create({"v": 0})
        key = f"s:{{{session.id}}}"
        # Its echo arrived (no longer expected) and was checked (no longer parked): not parked
        # alone could be "not arrived yet".
        store = layer.store
        await wait_for(lambda: not store.guard.is_echo(key) and not store.is_parked(key), 2)
        redis_server.kill()
        try:
            with pytest.raises(StoreUnavailable):
                await layer.manager.get("unknown-to-memory")  # the outage noticed: fallback
            assert layer.store.status().fallback_active
            layer.store.invalidate(key)  # the late echo
            assert not layer.store.is_parked(key)
            assert (await layer.manager.update(session.id, {"v": 1})).data == {"v": 1}
            assert (await layer.manager.get(session.id)).data == {"v": 1}
        finally:
            redis_server.start()


async def test_a_write_journalled_during_a_refusal_is_re_seeded_after_a_flush(
    redis_server: RedisServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of memory; a create is journalled; a call times out (SIGSTOP), and the fallback that
    follows ends by flushing the memory tier, the create kept aside for a re-seed. Redis still
    tracks the key for this replica, so the replay's write echoes back. Taken for another
    replica's write, that echo dropped what was kept, and a Redis restarted empty then lost the
    create (seed 11 round 15 of the torture run: 7 creates). The echo is held back here until
    the replay is over, as a busy listener delivers it."""
    client = redis_server.client()
    async with open_layer(redis_url) as layer:
        store, loop = layer.store, asyncio.get_running_loop()
        invalidate = store.invalidate

        def late(key: str, reason: str = "remote") -> str:
            loop.call_later(0.2, invalidate, key, reason)
            return "absent"

        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        try:
            session = await layer.manager.create({"v": 1})  # journalled
            redis_server.pause()
            try:
                with contextlib.suppress(StoreUnavailable):
                    await layer.manager.get("not-held")  # times out: the fallback begins
                assert layer.sample("store_fallback_active") == 1
            finally:
                redis_server.resume()
            await wait_for(lambda: layer.sample("store_fallback_active") == 0, 5)
            assert store.status().writes_refused == "oom"
            monkeypatch.setattr(store, "invalidate", late)
        finally:
            client.config_set("maxmemory", "0")
        await wait_for(lambda: layer.sample("store_replay_pending") == 0, 5)
        await asyncio.sleep(0.4)  # the echo is handled
        client.close()
        redis_server.kill()
        redis_server.start()  # no persistence: empty
        await wait_for(lambda: "epoch_changed" in layer.event_types(), 10)
        client = redis_server.client()
        assert client.get("sme:" + session_key(session.id)) is not None
        assert layer.sample("store_reseeded_total") == 1
    client.close()


async def test_a_read_during_a_journalled_delete_does_not_bring_the_session_back(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Redis refuses writes, so a delete is journalled; a read of the same session begun while
    the delete's entry is on its way to the disk gets the old value from Redis. It must not put
    it in memory: served after the delete was acknowledged, and re-seeded if Redis then lost its
    data (seed 32 round 22 of the torture run)."""
    client = redis_server.client()
    async with open_layer(redis_url) as layer:
        session = await layer.manager.create({"n": 1})
        await layer.store.clear_memory()
        assert layer.store.writes is not None
        journal = layer.store.writes.journal
        record, on_disk = journal.record, asyncio.Event()

        async def slow_record(item: Any) -> None:
            await on_disk.wait()  # a slow disk
            await record(item)

        journal.record = slow_record  # type: ignore[method-assign]
        client.config_set("min-replicas-to-write", 1)  # and this server has none
        try:
            other = asyncio.ensure_future(layer.manager.create({"other": 1}))  # refused
            await wait_for(lambda: layer.store.status().writes_refused == "noreplicas", 5)
            deleting = asyncio.ensure_future(layer.manager.delete(session.id))
            await asyncio.sleep(0.05)  # the delete waits for the disk
            assert (await layer.manager.get(session.id)).data == {"n": 1}  # from Redis
            on_disk.set()
            await asyncio.gather(other, deleting)
            with pytest.raises(SessionNotFound):
                await layer.manager.get(session.id)
        finally:
            client.config_set("min-replicas-to-write", 0)
        assert await layer.store.recover_now()
        with pytest.raises(SessionNotFound):
            await layer.manager.get(session.id)
    client.close()
