"""The replayer driven directly: what goes back to Redis (the journal, the re-send ring, a
re-seed), against an in-process Redis with the Lua scripts' version checks (`fleet_doubles`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.fleet import EpochChange
from exporter.store.journal import ReplayJournal
from exporter.store.recent_writes import RecentWrites
from exporter.store.replayer import Replayer
from tests.unit.sessions.fleet_doubles import FAR, FleetRedisDouble, Memory, Server


def item(key: str, version: int, payload: bytes) -> ReplayItem:
    return ReplayItem(key, version, FAR, StoredValue(payload, version, FAR))


class Setup:
    def __init__(self, *, recent: bool = False) -> None:
        self.server = Server()
        self.memory = Memory()
        self.journal = ReplayJournal(100)
        self.registry = CollectorRegistry()
        metrics = Metrics(self.registry)
        self.events = EventLog(100, metrics)
        self.replayer = Replayer(
            FleetRedisDouble(self.server),
            self.memory,
            self.journal,
            metrics=metrics,
            events=self.events,
            recent=RecentWrites(15.0) if recent else None,
        )

    def counter(self, name: str) -> float | None:
        return self.registry.get_sample_value(f"session_exporter_{name}_total")


async def test_a_reseed_never_overwrites_a_newer_value_or_a_delete_nor_a_journalled_key() -> None:
    setup = Setup()
    server = setup.server
    server.data["s:{newer}"] = (21, b"newer, written since")
    server.data["s:{deleted}"] = (31, None)
    for held in (
        item("s:{1}", 10, b"one"),
        item("s:{newer}", 20, b"older"),
        item("s:{deleted}", 30, b"deleted since"),
        item("s:{j}", 5, b"older than the journal's"),
    ):
        assert held.value is not None
        setup.memory.held[held.key] = held.value
    await setup.journal.record(item("s:{j}", 6, b"journalled"))

    await setup.replayer.follow(EpochChange.LOST)
    assert server.value("s:{1}") == b"one"
    assert server.data["s:{newer}"] == (21, b"newer, written since")
    assert server.data["s:{deleted}"] == (31, None)
    assert "s:{j}" not in server.data  # the journal's newer entry replays by itself
    assert setup.counter("store_reseeded") == 1
    assert [event.type for event in setup.events.recent(10)][-2:] == ["reseeded", "epoch_changed"]

    assert await setup.replayer.replay_all() == (1, 0)
    assert server.value("s:{j}") == b"journalled" and not setup.journal
    assert setup.counter("store_replayed") == 1


async def test_a_flushall_drops_memory_and_a_new_server_gets_the_recent_writes_again() -> None:
    setup = Setup(recent=True)
    setup.memory.held["s:{1}"] = StoredValue(b"one", 10, FAR)
    await setup.replayer.follow(EpochChange.FLUSHED)
    assert setup.memory.held == {} and setup.memory.flushes == 1 and setup.server.data == {}

    setup.replayer.acknowledged(item("s:{2}", 11, b"acknowledged"), late=False)
    assert setup.replayer.resends == 0
    await setup.replayer.follow(EpochChange.KEPT)
    assert setup.replayer.resends == 1
    assert await setup.replayer.replay_all() == (1, 0)
    assert setup.server.value("s:{2}") == b"acknowledged"


async def test_writes_a_new_master_may_lack_go_again_before_the_journal() -> None:
    setup = Setup(recent=True)
    replayer = setup.replayer
    assert not replayer.acknowledged(item("s:{1}", 10, b"before the switch"), late=False)
    assert replayer.acknowledged(item("s:{2}", 11, b"after the switch"), late=True)
    assert replayer.resends == 1
    replayer.resend_recent()  # the switch: every recent write goes again
    assert replayer.resends == 2
    await setup.journal.record(item("s:{1}", 12, b"journalled since"))
    # The re-sent s:{1} goes first, then the journal's newer one over it: nothing skipped.
    assert await replayer.replay_all() == (3, 0)
    assert setup.server.value("s:{1}") == b"journalled since"
    assert setup.server.value("s:{2}") == b"after the switch"
    assert replayer.resends == 0


async def test_without_a_resend_window_nothing_is_kept_to_send_again() -> None:
    setup = Setup(recent=False)
    assert not setup.replayer.acknowledged(item("s:{1}", 10, b"x"), late=True)
    setup.replayer.resend_recent()
    assert setup.replayer.resends == 0


async def test_a_replayed_write_the_old_master_already_held_is_sent_again_after_a_switch() -> None:
    """A write timed out on a hung master and was journalled, but the master took it when it
    woke up: its replay is skipped there (same version). If Sentinel had promoted another server
    meanwhile, the old master's copy dies in its resync: the switch must send it again."""
    setup = Setup(recent=True)
    journalled = item("s:{1}", 10, b"acknowledged from the journal")
    await setup.journal.record(journalled)
    setup.server.data["s:{1}"] = (10, b"acknowledged from the journal")  # the hung command
    assert await setup.replayer.replay_all() == (0, 1)
    setup.server.data.clear()  # the new master never got it
    setup.replayer.resend_recent()
    assert await setup.replayer.replay_all() == (1, 0)
    assert setup.server.value("s:{1}") == b"acknowledged from the journal"


async def test_a_journalled_write_that_lost_to_a_newer_one_leaves_memory() -> None:
    """Journalled during a refusal, replayed after another replica's delete (or newer update)
    of the session reached Redis: skipped, and this replica's copy must not be served any more
    (a refusal ends without a flush, and no invalidation follows)."""
    setup = Setup()
    setup.server.data["s:{gone}"] = (31, None)  # deleted through another replica
    setup.server.data["s:{newer}"] = (41, b"newer")
    for journalled in (item("s:{gone}", 30, b"ours"), item("s:{newer}", 40, b"ours")):
        assert journalled.value is not None
        setup.memory.held[journalled.key] = journalled.value
        await setup.journal.record(journalled)
    setup.memory.held["s:{other}"] = StoredValue(b"kept", 1, FAR)
    assert await setup.replayer.replay_all() == (0, 2)
    assert list(setup.memory.held) == ["s:{other}"]
    assert setup.server.data["s:{gone}"] == (31, None)
