"""The recovery protocol driven directly, without Redis: a stand-in for the few calls recovery
makes (`recovery.FleetRedis`, with the same version checks as the Lua scripts) and for the memory
tier (`fleet_doubles`). The real thing is tested against real servers in tests/integration/;
here every branch of the protocol is reachable in milliseconds."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from exporter.core.clock import FleetClock
from exporter.core.errors import StoreUnavailable
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.store.breaker import CircuitBreaker
from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.journal import ReplayJournal
from exporter.store.recent_writes import RecentWrites
from exporter.store.recovery import Recovery
from tests.unit.sessions.fleet_doubles import FAR, FleetRedisDouble, Memory, Server


class Replica:
    def __init__(self, name: str, server: Server, *, resend: bool = False) -> None:
        self.server = server
        self.memory = Memory()
        self.journal = ReplayJournal(100)
        metrics = Metrics(CollectorRegistry())
        self.events = EventLog(100, metrics)
        # The server's clock is 0.0 in the double: the fleet clock then counts from there.
        clock = FleetClock(monotonic=asyncio.get_running_loop().time, wall=lambda: 0.0)
        self.redis = FleetRedisDouble(server)
        self.recovery = Recovery(
            self.redis,
            self.memory,
            self.journal,
            replica_id=name,
            clock=clock,
            breaker=CircuitBreaker(0.05),
            metrics=metrics,
            events=self.events,
            recent=RecentWrites(15.0) if resend else None,
        )

    def hold(self, key: str, version: int, payload: bytes) -> None:
        self.memory.held[key] = StoredValue(payload, version, FAR)

    async def final_miss(self, read_at: float | None = None) -> bool:
        """What a session read that found nothing, begun at `read_at` (now), decides."""
        if read_at is None:
            read_at = self.recovery.clock.now()
        try:
            await self.recovery.check_miss(read_at)
        except StoreUnavailable:
            return False
        return True

    def event_types(self) -> list[str]:
        return [event.type for event in self.events.recent(100)]


async def settled(*replicas: Replica) -> None:
    for replica in replicas:
        await replica.recovery.sync()
    for replica in replicas:  # each now sees the others' settled records
        await replica.recovery.sync()


async def test_a_redis_that_came_back_empty_is_reseeded_by_every_replica_before_any_flush() -> None:
    server = Server()
    a, b = Replica("a", server), Replica("b", server)
    await settled(a, b)
    a.hold("s:{1}", 10, b"one")
    b.hold("s:{2}", 20, b"two")
    b.hold("s:{3}", 30, b"old copy")
    server.restart_empty()
    server.data["s:{3}"] = (31, None)  # deleted after the restart: the delete must stay

    await a.recovery.sync()  # a notices first and begins the new epoch
    assert server.value("s:{2}") is None  # only b holds it
    await b.final_miss()  # a miss on b reads the fleet: b follows the epoch a began, re-seeds
    for _ in range(10):
        await asyncio.sleep(0)
    assert server.value("s:{2}") == b"two"
    await settled(a, b)

    assert server.value("s:{1}") == b"one" and server.value("s:{2}") == b"two"
    assert server.data["s:{3}"] == (31, None)  # never resurrected
    assert a.memory.flushes == b.memory.flushes == 0  # re-seeded, nothing dropped
    assert "epoch_changed" in b.event_types()
    assert await a.final_miss() and await b.final_miss()


async def test_an_operators_flushall_is_respected_not_reseeded() -> None:
    server = Server()
    a = Replica("a", server)
    await settled(a)
    a.hold("s:{1}", 10, b"one")
    server.flushall()  # the same Redis process: its run id did not change
    await a.recovery.sync()
    assert server.value("s:{1}") is None and a.memory.held == {}


async def test_an_outage_is_replayed_and_other_replicas_records_are_awaited() -> None:
    server = Server()
    a, b = Replica("a", server), Replica("b", server)
    await settled(a, b)
    server.up = False
    a.recovery.failed(StoreUnavailable("down"))
    await a.journal.record(ReplayItem("s:{j}", 5, FAR, StoredValue(b"journalled", 5, FAR)))
    server.up = True
    assert await a.recovery.recover_now()
    assert server.value("s:{j}") == b"journalled"
    # b's last record predates a's outage: b may have journalled writes of its own meanwhile.
    assert not await a.final_miss()
    await b.recovery.sync()
    assert await a.final_miss()


async def test_a_miss_read_before_another_replica_finished_replaying_is_not_final() -> None:
    server = Server()
    a, b = Replica("a", server), Replica("b", server)
    await settled(a, b)
    b.recovery.refused("oom")  # b journals a create meanwhile
    await b.recovery.sync()  # its record says unsettled
    read_at = a.recovery.clock.now()  # a's read of that session begins, finds nothing...
    await asyncio.sleep(0.01)
    assert await b.recovery.recover_now()  # ...b replays it and reports settled just after
    assert not await a.final_miss(read_at)  # the miss may predate b's replay: 503
    assert await a.final_miss()  # a read begun now is final


async def test_a_journalled_write_is_acknowledged_only_once_the_fleet_sees_it_unsettled() -> None:
    """A write journalled as recovery settles (its Redis call failed on a stale socket, or it
    began in the fallback): the record that said settled is replaced before the write is
    acknowledged, so another replica's miss of it is never a final 404."""
    server = Server()
    a, b = Replica("a", server), Replica("b", server)
    await settled(a, b)
    await a.journal.record(ReplayItem("s:{new}", 9, FAR, StoredValue(b"journalled", 9, FAR)))
    await a.recovery.journalled()
    assert not await b.final_miss()
    assert await a.recovery.recover_now()
    assert server.value("s:{new}") == b"journalled" and await b.final_miss()


async def test_a_write_journalled_while_a_refusal_ends_is_replayed_within_an_interval() -> None:
    server = Server()
    a = Replica("a", server)
    await a.recovery.start()
    try:
        server.refusing = True
        a.recovery.refused("oom")
        server.refusing = False  # the refusal ends while a write is being journalled
        await a.journal.record(ReplayItem("s:{late}", 7, FAR, StoredValue(b"late", 7, FAR)))
        await a.recovery.journalled()
        for _ in range(100):
            if server.value("s:{late}") is not None:
                break
            await asyncio.sleep(0.01)
        assert server.value("s:{late}") == b"late" and not a.journal
        assert a.recovery.writes_refused is None
    finally:
        await a.recovery.stop()


async def test_a_fallback_that_finds_redis_refusing_writes_serves_reads_from_it() -> None:
    """A call timed out during an OOM spell (fallback: reads from memory only, 503 for the rest);
    once Redis answers, the replica reads from it again, and journals writes until it takes
    them, as in any refusal."""
    server = Server()
    a = Replica("a", server)
    await settled(a)
    a.recovery.failed(StoreUnavailable("Redis did not answer in time"))
    item = ReplayItem("s:{j}", 5, FAR, StoredValue(b"journalled", 5, FAR))
    await a.journal.record(item)
    server.refusing = True
    assert not await a.recovery.recover_now()
    assert not a.recovery.fallback_active and a.recovery.writes_refused == "oom"
    assert a.journal.get("s:{j}") is item and server.value("s:{j}") is None
    assert "failback" in a.event_types() and not await a.final_miss()
    server.refusing = False
    assert await a.recovery.recover_now()
    assert server.value("s:{j}") == b"journalled" and await a.final_miss()


async def test_a_master_switch_resends_the_last_acknowledged_writes() -> None:
    old_master = Server()
    a = Replica("a", old_master, resend=True)
    await settled(a)
    item = ReplayItem("s:{1}", 10, FAR, StoredValue(b"acked by the old master", 10, FAR))
    switches = a.recovery.switches
    a.recovery.acknowledged(item, switches)
    # The new master never got it; its marker was replicated, its run id is its own.
    new_master = Server()
    new_master.marker, new_master.run_id = old_master.marker, "run-new"
    a.redis.server = new_master  # the same client, now connected to the new master
    await a.recovery.master_switched("10.0.0.1:6379 -> 10.0.0.2:6379")
    assert a.recovery.fallback_active
    assert await a.recovery.recover_now()
    assert new_master.value("s:{1}") == b"acked by the old master"
    # A write the old master acknowledged after the switch was heard is sent again too.
    late = ReplayItem("s:{2}", 11, FAR, StoredValue(b"late ack", 11, FAR))
    a.recovery.acknowledged(late, switches)
    assert await a.recovery.recover_now()
    assert new_master.value("s:{2}") == b"late ack"


async def test_nothing_is_replayed_while_the_client_routes_to_a_replaced_master() -> None:
    zombie = Server()  # a Cluster master woken after its replica took over: it takes writes
    a = Replica("a", zombie, resend=True)
    await settled(a)
    item = ReplayItem("s:{1}", 10, FAR, StoredValue(b"acked before the switch", 10, FAR))
    a.recovery.acknowledged(item, a.recovery.switches)
    await a.recovery.master_switched("Cluster primaries 10.0.0.1:7000 -> 10.0.0.2:7000")
    stale_route: list[str] = ["10.0.0.2:7000 owns the slots, the client routes to 10.0.0.1:7000"]

    async def routes_checked() -> None:  # ClusterWatch.before_replay's verdict
        if stale_route:
            raise StoreUnavailable(f"the Cluster's slot map is not settled: {stale_route[0]}")

    a.recovery.before_replay = routes_checked
    assert not await a.recovery.recover_now()
    assert a.recovery.fallback_active and zombie.value("s:{1}") is None
    promoted = Server()
    promoted.marker, promoted.run_id = zombie.marker, "run-promoted"
    a.redis.server = promoted  # the client's map refreshed
    stale_route.clear()
    assert await a.recovery.recover_now()
    assert promoted.value("s:{1}") == b"acked before the switch"


@pytest.mark.parametrize("refusing", [False, True])
async def test_misses_are_doubted_while_this_replica_is_out(refusing: bool) -> None:
    server = Server()
    a = Replica("a", server)
    await settled(a)
    assert await a.final_miss()
    if refusing:
        a.recovery.refused("noreplicas")
    else:
        a.recovery.failed(StoreUnavailable("down"))
    assert not await a.final_miss()
    assert await a.recovery.recover_now()
    assert await a.final_miss()
