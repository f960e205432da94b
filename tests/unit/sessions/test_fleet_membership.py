"""Fleet membership driven directly: the records, the epoch, the heartbeat and the misses, with
the outage driver as a stub (`OutageSide`) and Redis as an in-process stand-in (`fleet_doubles`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from exporter.core.clock import FleetClock
from exporter.core.errors import StoreUnavailable, WritesRefused
from exporter.core.metrics import Metrics
from exporter.store.breaker import CircuitBreaker
from exporter.store.fleet import EpochChange, Member
from exporter.store.fleet_membership import PRUNE_AFTER, FleetMembership
from exporter.store.redis_store import FleetSnapshot
from tests.unit.sessions.fleet_doubles import FleetRedisDouble, Memory, Server


class Outage:
    """`OutageSide`: the outage driver as membership sees it."""

    def __init__(self) -> None:
        self.writes_refused: str | None = None
        self.is_healthy = True  # nothing left to replay
        self.follow_fails = False
        self.changes: list[EpochChange] = []
        self.failures: list[StoreUnavailable] = []

    def healthy(self) -> bool:
        return self.is_healthy

    async def follow(self, change: EpochChange) -> None:
        if self.follow_fails:
            raise StoreUnavailable("the re-seed failed half-way")
        self.changes.append(change)

    def sync_failed(self, exc: StoreUnavailable) -> None:
        self.failures.append(exc)


class KeptMembers:
    """`FleetMemory`: the file beside the journal, as a list."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def load(self) -> list[str]:
        return list(self.ids)

    def keep(self, members: list[str]) -> None:
        self.ids = list(members)


def membership(
    server: Server,
    name: str = "a",
    outage: Outage | None = None,
    members: KeptMembers | None = None,
) -> FleetMembership:
    # The double's Redis clock reads the loop's time (its samples are all 0.0): so does the host.
    loop_time = asyncio.get_running_loop().time
    clock = FleetClock(monotonic=loop_time, wall=loop_time)
    return FleetMembership(
        FleetRedisDouble(server),
        Memory(),
        outage or Outage(),
        replica_id=name,
        clock=clock,
        breaker=CircuitBreaker(0.05),
        metrics=Metrics(CollectorRegistry()),
        members=members,
    )


def record(server: Server, name: str) -> Member:
    member = Member.decode(server.members[name])
    assert member is not None
    return member


async def final_miss(replica: FleetMembership) -> bool:
    """Whether a session read that found nothing, begun now, is a final 404 (else a 503)."""
    try:
        await replica.check_miss(replica.clock.now())
    except StoreUnavailable:
        return False
    return True


async def eventually(condition: Callable[[], object]) -> None:
    """Wait, with a generous deadline, for a background task to make `condition` true."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_replica_with_writes_left_to_replay_is_never_settled() -> None:
    server, outage = Server(), Outage()
    a = membership(server, outage=outage)
    outage.is_healthy = False  # its journal holds writes from a previous run
    await a.sync()
    assert not record(server, "a").settled and not await final_miss(a)
    outage.is_healthy = True
    await a.sync()
    assert record(server, "a").settled and await final_miss(a)
    outage.is_healthy = False  # a write was journalled since
    await a.sync()
    assert not record(server, "a").settled


async def test_a_new_replica_with_nothing_to_replay_never_reports_unsettled() -> None:
    """Others would doubt their misses while its record said so (503s with the fleet settled)."""
    server, outage = Server(), Outage()
    await membership(server, "a").sync()
    b = membership(server, "b", outage=outage)
    written: list[bytes] = []
    fleet_sync = b.redis.fleet_sync

    async def recording(replica: str, record: Member | None) -> FleetSnapshot:
        if record is not None:
            written.append(record.encode())
        return await fleet_sync(replica, record)

    b.redis.fleet_sync = recording  # type: ignore[method-assign]
    await b.sync()
    assert written and all(Member.decode(raw).settled for raw in written)  # type: ignore[union-attr]
    assert record(server, "b").settled and await final_miss(b)


@pytest.mark.parametrize(
    ("event", "change"),
    [
        ("restart_empty", EpochChange.LOST),
        ("flushall", EpochChange.FLUSHED),
        ("new_process", EpochChange.KEPT),
    ],
)
async def test_an_epoch_change_is_followed_once_and_again_if_following_failed(
    event: str, change: EpochChange
) -> None:
    server, outage = Server(), Outage()
    a = membership(server, outage=outage)
    await a.sync()
    assert outage.changes == [EpochChange.FIRST]
    if event == "new_process":
        server.run_id = "run-2"  # the data survived on another process (AOF, a failover)
    else:
        getattr(server, event)()
    outage.follow_fails = True
    with pytest.raises(StoreUnavailable):
        await a.sync()
    outage.follow_fails = False
    await a.sync()
    await a.sync()
    assert outage.changes == [EpochChange.FIRST, change]
    assert record(server, "a").settled and await final_miss(a)


async def test_records_silent_for_ten_minutes_are_pruned() -> None:
    server = Server()
    a = membership(server)
    await a.sync()
    now = a.clock.now()
    server.members["gone"] = Member("", True, now - PRUNE_AFTER - 1).encode()
    server.members["quiet"] = Member("", True, now - PRUNE_AFTER + 60).encode()
    await a.sync()
    assert set(server.members) == {"a", "quiet"}


async def test_the_replicas_heard_of_are_awaited_after_a_restart_that_lost_the_records() -> None:
    server, kept = Server(), KeptMembers()
    b = membership(server, "b")
    await b.sync()
    await membership(server, "a", members=kept).sync()
    assert kept.ids == ["b"]
    server.restart_empty()  # every record is gone with the data
    restarted = membership(server, "a", members=kept)
    await restarted.sync()
    assert not await final_miss(restarted)  # b may hold sessions to re-seed
    await b.sync()  # b follows the new epoch (re-seeds) and reports
    assert await final_miss(restarted)


async def test_misses_waiting_together_share_one_read_of_the_fleet() -> None:
    server = Server()
    a = membership(server)
    await a.sync()
    assert isinstance(a.redis, FleetRedisDouble)
    syncs = a.redis.syncs
    misses = await asyncio.gather(*(final_miss(a) for _ in range(10)))
    assert all(misses)
    assert a.redis.syncs == syncs + 1


async def test_a_miss_after_the_shared_read_was_sent_waits_for_a_later_one() -> None:
    """b journals a write and marks itself unsettled while a's read of the fleet is in flight:
    a miss of that write on a must not be judged by the read sent before it."""
    server = Server()
    a, b = membership(server, "a"), membership(server, "b")
    await b.sync()
    await a.sync()
    assert isinstance(a.redis, FleetRedisDouble)
    gate, sync = asyncio.Event(), a.redis.fleet_sync

    async def slow_sync(replica: str, record: Member | None) -> FleetSnapshot:
        snapshot = await sync(replica, record)  # read now, answered later
        await gate.wait()
        return snapshot

    a.redis.fleet_sync = slow_sync  # type: ignore[method-assign]
    early = asyncio.ensure_future(final_miss(a))
    await asyncio.sleep(0)  # its read is sent
    await asyncio.sleep(0)
    b.outage_started()  # b journals (and says so in its record) ...
    await eventually(lambda: not record(server, "b").settled)
    late = asyncio.ensure_future(final_miss(a))  # ... then a misses what b journalled
    await asyncio.sleep(0)
    gate.set()
    await early  # final or not: the view it is judged by may already be the later one
    assert not await late


async def test_a_miss_while_redis_refuses_writes_is_doubted_and_the_refusal_handed_on() -> None:
    """Another replica may be journalling the session, its record unable to say so."""
    server, outage = Server(), Outage()
    a, b = membership(server, "a", outage=outage), membership(server, "b")
    await b.sync()
    await a.sync()
    assert await final_miss(a)
    server.refusing = True  # b journals from here on; its record still says settled
    assert not await final_miss(a)
    refused = outage.failures[0]
    assert isinstance(refused, WritesRefused) and refused.reason == "oom"
    outage.writes_refused = "oom"  # the driver took it: misses read the view, writing nothing
    assert isinstance(a.redis, FleetRedisDouble)
    views = a.redis.views
    await final_miss(a)
    assert a.redis.views == views + 1


async def test_an_outage_doubts_misses_at_once_and_rewrites_the_record_unsettled() -> None:
    server, outage = Server(), Outage()
    a = membership(server, outage=outage)
    await a.sync()
    assert await final_miss(a)
    outage.is_healthy = False
    a.outage_started()
    assert not await final_miss(a)
    await eventually(lambda: not record(server, "a").settled)


async def test_a_journalled_write_waits_until_the_record_says_unsettled() -> None:
    server, outage = Server(), Outage()
    a = membership(server, outage=outage)
    await a.sync()
    assert record(server, "a").settled
    outage.is_healthy = False  # the write is in the journal, about to be acknowledged
    await a.journalled()
    assert not record(server, "a").settled


async def test_a_write_journalled_while_a_settled_record_is_on_its_way_waits_for_it() -> None:
    """Recovery's "settled" record, computed before a write's journal entry reached the disk,
    may land after that write was journalled: the write is acknowledged only once an
    unsettled record has landed after it (else a miss elsewhere is a final 404 for it)."""
    server, outage = Server(), Outage()
    a, b = membership(server, outage=outage), membership(server, "b")
    outage.is_healthy = False
    await a.sync()  # recovering: the record says unsettled
    await b.sync()
    outage.is_healthy = True  # replay done: what recovery does then
    a.settle_if_healthy()
    server.landing = landing = asyncio.Event()
    settled = asyncio.ensure_future(a.report())  # "settled" is on its way
    await asyncio.sleep(0.01)
    outage.is_healthy = False  # a write's journal entry is on disk now
    journalled = asyncio.ensure_future(a.journalled())
    await asyncio.sleep(0.05)
    assert not journalled.done()  # not acknowledged while "settled" may still land
    landing.set()
    await asyncio.gather(settled, journalled)
    assert not record(server, "a").settled and not await final_miss(b)


async def test_a_replica_that_left_is_not_waited_for() -> None:
    server, b_outage = Server(), Outage()
    a, b = membership(server, "a"), membership(server, "b", outage=b_outage)
    for replica in (a, b, a):
        await replica.sync()
    b_outage.is_healthy = False
    await b.sync()
    assert not await final_miss(a)  # b may hold what a missed
    await b.leave()
    assert record(server, "b").left and await final_miss(a)


async def test_a_refused_record_write_in_the_heartbeat_is_handed_to_the_driver() -> None:
    server, outage = Server(), Outage()
    a = membership(server, outage=outage)
    await a.sync()
    a.start()
    try:
        server.refusing = True  # e.g. OOM: the next heartbeat's record write is refused
        await eventually(lambda: outage.failures)
        refused = outage.failures[0]
        assert isinstance(refused, WritesRefused) and refused.reason == "oom"
    finally:
        await a.stop()


async def test_a_write_journalled_as_a_refusal_ends_marks_the_record_unsettled_first() -> None:
    """The first journalled write of the refusal could not mark the record (refused too); one
    journalled after Redis takes writes again (before this replica noticed) must."""
    server, outage = Server(), Outage()
    b = membership(server, "b", outage=outage)
    await b.sync()
    assert record(server, "b").settled
    server.refusing = True
    outage.writes_refused, outage.is_healthy = "oom", False
    b.outage_started()  # what the driver does when a write is refused
    await b.journalled()  # its record write is refused too: it still says settled
    assert record(server, "b").settled
    server.refusing = False  # the refusal ends; b has not noticed yet
    await b.journalled()
    assert not record(server, "b").settled


async def test_a_write_journalled_after_the_master_moved_waits_for_the_unsettled_record() -> None:
    """The master moved: this replica stops using a Redis the others still read, and another
    one may have followed the new master first and answer misses from it. Its first
    "unsettled" attempt failed (its connections were being reset), so a write journalled next
    must not be acknowledged before an unsettled record has landed (seed 21 round 7 of the
    torture run: a create journalled there was a final 404 on the replica that failed back
    first)."""
    server, outage = Server(), Outage()
    a, b = membership(server, outage=outage), membership(server, "b")
    for replica in (a, b, a):
        await replica.sync()
    a.breaker.failure()  # in fallback, what the driver does when the master moves
    outage.is_healthy = False
    server.up = False  # its connections are being reset
    a.others_still_read()
    a.outage_started()
    await asyncio.sleep(0.05)  # the attempt failed
    assert record(server, "a").settled
    server.up = True
    await a.journalled()
    assert not record(server, "a").settled and not await final_miss(b)
    a.outage_ended()  # a later outage of Redis itself does not wait for the record again
    await a.sync()
    a.breaker.failure()
    server.up = False
    a.outage_started()
    started = asyncio.get_running_loop().time()
    await a.journalled()
    assert asyncio.get_running_loop().time() - started < 0.1
