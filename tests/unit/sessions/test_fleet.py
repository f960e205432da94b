"""The fleet's pure decisions: which epoch to begin, what a replica does on an epoch change, and
when a miss is final. No Redis: records and clocks are given."""

from __future__ import annotations

import pytest

from exporter.store.fleet import Epoch, EpochChange, FleetView, Member, epoch_change, next_epoch

E1 = Epoch("e1", "run-1", lost=False)


def view(**members: Member) -> FleetView:
    fleet = FleetView("me", forget_after=10.0)
    fleet.update(E1, dict(members), now=100.0)
    fleet.settle("e1")
    return fleet


def test_a_missing_marker_begins_a_lost_epoch_and_a_new_server_a_kept_one() -> None:
    lost = next_epoch(None, "run-2")
    assert lost is not None and lost.lost and lost.run_id == "run-2"
    kept = next_epoch(E1, "run-2")  # a failover, or a restart from the append-only file
    assert kept is not None and not kept.lost and kept.token != E1.token
    assert next_epoch(E1, "run-1") is None
    assert next_epoch(E1, "") is None  # a server that did not say: nothing to compare


@pytest.mark.parametrize(
    ("current", "run_id_seen", "change"),
    [
        (E1, "run-1", None),
        (Epoch("e2", "run-2", lost=True), "run-1", EpochChange.LOST),  # restarted empty
        (Epoch("e2", "run-1", lost=True), "run-1", EpochChange.FLUSHED),  # FLUSHALL
        (Epoch("e2", "run-2", lost=False), "run-1", EpochChange.KEPT),  # new master
        # Another replica began the epoch first: this one still re-seeds for itself.
        (Epoch("e3", "run-2", lost=True), "", EpochChange.LOST),
    ],
)
def test_each_replica_decides_for_itself_what_an_epoch_change_means(
    current: Epoch, run_id_seen: str, change: EpochChange | None
) -> None:
    assert epoch_change(E1, current, run_id_seen) is change


def test_a_loss_in_an_epoch_this_replica_never_saw_is_still_a_loss() -> None:
    """Redis restarted empty (another replica began the lost epoch), then restarted again from
    its append-only file, all while this replica was in fallback: it must still re-seed."""
    lost = next_epoch(None, "run-2")
    assert lost is not None
    kept = next_epoch(lost, "run-3")
    assert kept is not None and not kept.lost
    assert epoch_change(E1, kept, "run-1") is EpochChange.LOST
    assert epoch_change(lost, kept, "run-2") is EpochChange.KEPT  # it saw that loss already
    # A FLUSHALL on the server it knew, then a restart from the file: the flush is respected.
    flushed = next_epoch(None, "run-1")
    assert flushed is not None
    later = next_epoch(flushed, "run-3")
    assert later is not None and epoch_change(E1, later, "run-1") is EpochChange.FLUSHED


def test_the_marker_carries_the_loss_and_reads_the_older_format() -> None:
    lost = next_epoch(None, "run-2")
    assert lost is not None
    kept = next_epoch(lost, "run-3")
    assert kept is not None and Epoch.decode(kept.encode()) == kept
    for old in (b"e1|run-1|0", b"e2|run-2|1"):  # as earlier versions wrote them
        epoch = Epoch.decode(old)
        assert epoch is not None and epoch.encode() == old
    assert Epoch.decode(b"e2|run-2|1") == Epoch("e2", "run-2", True, "e2", "run-2")


def test_a_new_process_takes_the_epoch_as_it_is() -> None:
    assert epoch_change(None, E1, "") is EpochChange.FIRST


def test_a_miss_is_final_only_when_every_member_is_settled_and_fresh() -> None:
    fleet = view(b=Member("e1", True, 99.5))
    assert fleet.doubt(now=100.5) is None
    fleet.update(E1, {"b": Member("e1", False, 100.6)}, now=100.6)  # b is in an outage
    assert "still recovering" in (fleet.doubt(now=100.7) or "")
    fleet.update(E1, {"b": Member("e1", True, 101.0)}, now=101.0)
    assert fleet.doubt(now=101.1) is None
    # Silent since, its record settled: crashed (a partition is the documented exception).
    assert fleet.doubt(now=103.5) is None


def test_records_from_before_this_replicas_outage_are_not_trusted() -> None:
    fleet = view(b=Member("e1", True, 99.9))
    fleet.outage_started(now=100.0)  # b's record predates it: b may be journalling too
    fleet.outage_ended(now=100.2)
    assert "since the last outage" in (fleet.doubt(now=100.3) or "")
    fleet.update(E1, {"b": Member("e1", True, 100.1)}, now=100.4)  # b settled during ours
    assert fleet.doubt(now=100.5) is None


def test_a_member_whose_record_vanished_is_awaited_then_forgotten() -> None:
    fleet = view(b=Member("e1", True, 100.0))
    fleet.update(E1, {}, now=100.5)  # Redis lost the records (restarted empty)
    assert "has not reported since Redis came back" in (fleet.doubt(now=100.6) or "")
    # It may hold journalled writes: awaited while it may be starting again, then forgotten.
    assert "has not reported" in (fleet.doubt(now=219.9) or "")
    assert fleet.doubt(now=220.1) is None
    assert "b" not in fleet.last_seen


def test_a_settled_member_that_went_silent_is_forgotten_sooner_than_an_unsettled_one() -> None:
    fleet = view(b=Member("e1", True, 100.0), c=Member("e1", False, 100.0))
    assert "replica c is still recovering" in (fleet.doubt(now=110.5) or "")
    assert "b" not in fleet.last_seen  # settled, silent 10 s: crashed, nothing of it unseen
    assert fleet.doubt(now=220.1) is None and fleet.last_seen == {}


def test_silence_during_this_replicas_outage_does_not_count() -> None:
    """A replica killed mid-outage (its journal on disk) and Redis down longer than the patience
    for settled members: when Redis is back, it is still awaited."""
    fleet = view(b=Member("e1", True, 99.9))
    fleet.outage_started(now=100.0)
    fleet.outage_ended(now=130.0)  # nobody could write a record for 30 s
    assert "since the last outage" in (fleet.doubt(now=130.1) or "")
    assert "since the last outage" in (fleet.doubt(now=240.0) or "")  # awaited 120 s from the end
    assert fleet.doubt(now=250.1) is None


def test_a_member_that_left_cleanly_is_not_awaited() -> None:
    fleet = view(b=Member("e1", True, 100.0))
    fleet.update(E1, {"b": Member("e1", True, 100.2, left=True)}, now=100.5)
    assert fleet.doubt(now=100.6) is None and "b" not in fleet.last_seen
    fleet.update(E1, {}, now=101.0)  # its record pruned later: still not awaited
    assert fleet.doubt(now=101.1) is None


def test_an_epoch_change_unsettles_this_replica_until_it_follows() -> None:
    fleet = view()
    fleet.update(Epoch("e2", "run-2", lost=True), {}, now=101.0)
    assert fleet.doubt(now=101.0) == "this replica has not settled in the current data epoch yet"
    fleet.update(None, {}, now=101.1)
    assert fleet.doubt(now=101.1) == "Redis lost its data; replicas are re-seeding"


def test_records_and_markers_round_trip_and_unreadable_ones_are_unsettled() -> None:
    for member in (Member("e1", True, 123.5, 120.0), Member("e1", True, 124.0, 120.0, left=True)):
        assert Member.decode(member.encode()) == member
    assert Member.decode(b"not json") is None
    assert Epoch.decode(E1.encode()) == E1
    assert Epoch.decode(None) is None
    fleet = FleetView("me", forget_after=10.0)
    fleet.update(E1, {"b": None}, now=100.0)  # a record this version cannot read
    fleet.settle("e1")
    assert "still recovering" in (fleet.doubt(now=100.0) or "")
