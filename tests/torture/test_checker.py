"""The checker on hand-made histories: each rule rejects the anomaly it names, and lets pass what
the guarantee allows (indeterminate writes either way, reads racing a write, expiry, outages)."""

from __future__ import annotations

import math

import pytest

from tests.torture.checker import (
    NOTICE_WITHIN,
    SLOW_REPLICA_EXCUSE,
    AnomalyKind,
    Verdict,
    check,
    intersect,
    settled_intervals,
    subtract,
)
from tests.torture.history import (
    COLD_CLIENT,
    FaultWindow,
    FleetSample,
    History,
    Incident,
    Kind,
    Op,
)

TTL = 60.0


class Script:
    """A history written by hand: each call records one operation taking 10 ms from `at`.
    Unless `settled` is False, both replicas report failback with an empty journal throughout
    (from 0 to 100 s)."""

    def __init__(self, settled: bool = True) -> None:
        self.history = History(replicas=["A", "B"])
        if settled:
            settled_fleet(self, 0, 100)

    def write(
        self,
        kind: Kind,
        session: str,
        value: int | None,
        at: float,
        status: int | None,
        client: int = 1,
        ttl: float | None = None,
    ) -> Script:
        op = Op(client, kind, session, value, at, at + 0.01, "A", status, ttl=ttl)
        self.history.ops.append(op)
        return self

    def create(
        self, session: str, value: int, at: float, status: int | None = 201, client: int = 1
    ) -> Script:
        return self.write(Kind.CREATE, session, value, at, status, client, ttl=TTL)

    def update(
        self, session: str, value: int, at: float, status: int | None = 200, client: int = 1
    ) -> Script:
        return self.write(Kind.UPDATE, session, value, at, status, client)

    def delete(self, session: str, at: float, status: int | None = 204, client: int = 1) -> Script:
        return self.write(Kind.DELETE, session, None, at, status, client)

    def read(
        self,
        session: str,
        at: float,
        value: int | None = None,
        status: int | None = 200,
        client: int = 2,
        took: float = 0.01,
        error: str = "",
    ) -> Script:
        op = Op(client, Kind.READ, session, value, at, at + took, "B", status, error)
        self.history.ops.append(op)
        return self

    def final(
        self, session: str, value: int | None = None, status: int = 200, at: float = 30.0
    ) -> Script:
        op = Op(COLD_CLIENT, Kind.READ, session, value, at, at + 0.01, "cold", status)
        self.history.final_reads.append(op)
        return self

    def check(self) -> Verdict:
        return check(self.history)


def kinds(verdict: Verdict) -> list[AnomalyKind]:
    return [anomaly.kind for anomaly in verdict.anomalies]


# --- what must be rejected -------------------------------------------------------------------


def test_an_acknowledged_session_missing_at_the_end_is_lost() -> None:
    verdict = Script().create("s", 1, at=1).update("s", 2, at=2).final("s", status=404).check()
    assert kinds(verdict) == [AnomalyKind.LOST]
    assert verdict.wrong == 1 and not verdict.valid
    assert "update v=2" in verdict.anomalies[0].detail


def test_an_older_value_than_the_last_acknowledged_update_is_wrong() -> None:
    verdict = Script().create("s", 1, at=1).update("s", 2, at=2).final("s", 1).check()
    assert kinds(verdict) == [AnomalyKind.OLDER]
    assert verdict.wrong == 1


def test_an_acknowledged_delete_must_not_come_back() -> None:
    verdict = Script().create("s", 1, at=1).delete("s", at=2).final("s", 1).check()
    assert kinds(verdict) == [AnomalyKind.RESURRECTED]
    assert verdict.wrong == 1


def test_a_value_never_written_is_wrong_at_the_end_and_during_the_load() -> None:
    script = Script().create("s", 1, at=1).create("t", 2, at=1.5).read("s", at=2, value=2)
    verdict = script.final("s", 999).final("t", 2).check()
    assert sorted(kinds(verdict)) == [AnomalyKind.PHANTOM, AnomalyKind.PHANTOM]
    assert verdict.wrong == 1  # only the final one is an acknowledged write found wrong


def test_a_value_read_before_its_write_began_is_phantom() -> None:
    script = Script().create("s", 1, at=1).read("s", at=2, value=3).update("s", 3, at=5)
    verdict = script.final("s", 3).check()
    assert kinds(verdict) == [AnomalyKind.PHANTOM]


def test_a_client_never_reads_older_than_its_own_acknowledged_write() -> None:
    script = Script().create("s", 1, at=1).update("s", 2, at=2)
    verdict = script.read("s", at=3, value=1, client=1).final("s", 2).check()
    assert kinds(verdict) == [AnomalyKind.STALE]
    assert verdict.wrong == 0


def test_a_client_never_reads_older_than_it_has_read_before() -> None:
    script = Script().create("s", 1, at=1).update("s", 2, at=2)
    script.read("s", at=3, value=2).read("s", at=4, value=1)
    assert kinds(script.final("s", 2).check()) == [AnomalyKind.STALE]


def test_the_client_that_deleted_a_session_never_reads_it_again() -> None:
    script = Script().create("s", 1, at=1).delete("s", at=2)
    verdict = script.read("s", at=3, value=1, client=1).final("s", status=404).check()
    assert kinds(verdict) == [AnomalyKind.RESURRECTED]
    assert verdict.wrong == 0


def test_a_404_for_a_live_acknowledged_session_is_false() -> None:
    script = Script().create("s", 1, at=1).read("s", at=2, status=404)
    verdict = script.final("s", 1).check()
    assert kinds(verdict) == [AnomalyKind.FALSE_404]
    assert verdict.false_404s == 1


def test_a_put_answered_404_on_a_live_session_is_a_false_404() -> None:
    script = Script().create("s", 1, at=1).update("s", 2, at=2, status=404)
    verdict = script.final("s", 1).check()
    assert kinds(verdict) == [AnomalyKind.FALSE_404]
    assert verdict.indeterminate == 1


def test_a_delete_answered_404_on_a_live_session_is_a_false_404() -> None:
    script = Script().create("s", 1, at=1).delete("s", at=2, status=404)
    assert kinds(script.final("s", 1).check()) == [AnomalyKind.FALSE_404]


def test_a_session_read_after_its_ttl_outlived_it() -> None:
    script = Script().create("s", 1, at=1).read("s", at=1 + TTL + 1, value=1)
    verdict = script.check()  # no final read: the cold replica came too late
    assert AnomalyKind.OUTLIVED in kinds(verdict)
    late = Script().create("s", 1, at=-TTL)
    assert kinds(late.final("s", 1).check()) == [AnomalyKind.OUTLIVED]


def test_a_final_read_without_an_answer_cannot_vouch_for_the_write() -> None:
    script = Script(settled=False).create("s", 1, at=1).create("t", 2, at=1)
    verdict = script.final("s", status=503).check()
    assert sorted(kinds(verdict)) == [AnomalyKind.UNVERIFIED, AnomalyKind.UNVERIFIED]


def settled_fleet(script: Script, start: float, end: float) -> Script:
    """Both replicas report failback with an empty journal every 100 ms from `start` on."""
    for replica in script.history.replicas:
        at = start
        while at < end:
            script.history.samples.append(FleetSample(replica, at, at + 0.005, True))
            at += 0.1
    return script


def test_a_503_once_every_replica_has_failed_back_is_late() -> None:
    script = Script().create("s", 1, at=1)
    verdict = script.read("s", at=5, status=503).final("s", 1).check()
    assert kinds(verdict) == [AnomalyKind.LATE_503]
    assert verdict.late_503s == 1


def test_a_503_while_replicas_learn_of_a_transparent_fault_is_not_late() -> None:
    """A planned failover: every replica stays connected and settled as the monitor sees it,
    and learns of the new master at its next sync."""
    for after, late in [(0.1, False), (1.0, True)]:
        script = Script().create("s", 1, at=1)
        script.history.faults.append(FaultWindow("cluster-failover", "redis", 3.0, 3.02))
        verdict = script.read("s", at=3.02 + after, status=503).final("s", 1).check()
        assert (kinds(verdict) == [AnomalyKind.LATE_503]) is late, after


def test_a_final_read_answered_503_after_failback_is_late_and_unverified() -> None:
    verdict = Script().create("s", 1, at=1).final("s", status=503).check()
    assert sorted(kinds(verdict)) == [AnomalyKind.LATE_503, AnomalyKind.UNVERIFIED]


def test_a_read_refused_while_redis_served_reads_is_unserved() -> None:
    script = Script(settled=False).create("s", 1, at=1).read("s", at=3, status=503)
    settled_fleet(script, 1.5, 2)  # Redis certainly held it when the refusal began
    script.history.faults.append(FaultWindow("noreplicas", "redis", 2, 4, redis_serves_reads=True))
    assert kinds(script.final("s", 1).check()) == [AnomalyKind.UNSERVED_READ]


@pytest.mark.parametrize(
    "error",
    [
        "unavailable (Redis did not answer in time; the memory tier does not hold this key)",
        "store_busy (this process was too busy to hear Redis in time)",
    ],
)
def test_a_read_refused_by_a_replica_too_slow_itself_is_not_counted(error: str) -> None:
    """Its 503 says so: its own call timed out (an outage, to it) or its loop stalled
    (backpressure): a loaded machine, not a refusal of a read Redis served."""
    script = Script(settled=False).create("s", 1, at=1).read("s", at=3, status=503, error=error)
    settled_fleet(script, 1.5, 2)
    script.history.faults.append(FaultWindow("noreplicas", "redis", 2, 4, redis_serves_reads=True))
    verdict = script.final("s", 1).check()
    assert kinds(verdict) == [AnomalyKind.UNSERVED_READ]
    assert verdict.valid and verdict.excused[0].excused == SLOW_REPLICA_EXCUSE


def test_a_session_a_replica_may_not_have_replayed_yet_may_be_refused() -> None:
    """Written during one refusal, read during the next: no replica was seen settled in
    between, so it may still be in the journal of the replica that took it."""
    script = Script(settled=False).create("s", 1, at=1).read("s", at=5, status=503)
    settled_fleet(script, 0, 0.5)
    for replica in script.history.replicas:  # then journalling, and never seen settled again
        script.history.samples.append(FleetSample(replica, 0.7, 0.705, False))
    script.history.faults.append(FaultWindow("oom", "redis", 0.6, 3, redis_serves_reads=True))
    script.history.faults.append(FaultWindow("oom", "redis", 4, 6, redis_serves_reads=True))
    assert kinds(script.final("s", 1).check()) == []


def test_a_session_redis_lost_since_its_last_write_may_be_refused() -> None:
    """Redis restarted empty after the write (a double failure lost it, or a replica is still
    re-seeding it): whatever that cost, the loss rules judge it, not the refusal's."""
    script = Script(settled=False).create("s", 1, at=1).read("s", at=5, status=503)
    settled_fleet(script, 1.5, 4)
    script.history.faults.append(FaultWindow("restart-empty", "redis", 2, 2.5, loses_data=True))
    script.history.faults.append(FaultWindow("oom", "redis", 4, 6, redis_serves_reads=True))
    assert AnomalyKind.UNSERVED_READ not in kinds(script.final("s", 1).check())


def test_an_incident_fails_the_run() -> None:
    script = Script()
    script.history.incidents.append(Incident(3.0, "A", "did not start again within 20 s"))
    verdict = script.check()
    assert kinds(verdict) == [AnomalyKind.INCIDENT]
    assert "did not start again" in verdict.anomalies[0].describe()


def test_an_answered_failed_write_cannot_land_after_a_later_acknowledged_one() -> None:
    script = Script(settled=False).create("s", 1, at=1).update("s", 2, at=2, status=503)
    verdict = script.update("s", 3, at=3).final("s", 2).check()
    assert kinds(verdict) == [AnomalyKind.OLDER]


def test_a_write_lost_to_a_single_failure_counts() -> None:
    """Redis lost its data, but the replica that made the write was alive (it re-seeds), or was
    killed before the write, or Redis kept its data: nothing excuses the loss."""
    for kill, loss in [
        (None, FaultWindow("redis-restart-empty", "redis", 5, 6, loses_data=True)),
        ((0.2, 0.5), FaultWindow("redis-restart-empty", "redis", 5, 6, loses_data=True)),
        ((3, 4), FaultWindow("redis-kill", "redis", 5, 6)),  # restarted on its data
    ]:
        script = Script().create("s", 1, at=1).update("s", 2, at=2)
        if kill is not None:
            script.history.faults.append(FaultWindow("replica-kill", "A", *kill, False, False))
        script.history.faults.append(loss)
        verdict = script.final("s", status=404).check()
        assert kinds(verdict) == [AnomalyKind.LOST] and verdict.wrong == 1, (kill, loss)


# --- what must pass --------------------------------------------------------------------------


def test_a_session_written_while_redis_refused_writes_may_be_refused_a_read() -> None:
    """Its write is in a replica's journal, not in Redis: the honest answer elsewhere is 503."""
    script = Script(settled=False).create("s", 1, at=1).update("s", 2, at=2.5)
    script.read("s", at=3, status=503)
    script.history.faults.append(FaultWindow("noreplicas", "redis", 2, 4, redis_serves_reads=True))
    assert kinds(script.final("s", 2).check()) == []


def test_an_indeterminate_update_may_have_happened_or_not() -> None:
    for status in (503, 500, None):
        for final in (1, 2):
            script = Script(settled=False).create("s", 1, at=1)
            script.update("s", 2, at=2, status=status)
            verdict = script.final("s", final).check()
            assert verdict.valid, (status, final, verdict.anomalies)


def test_an_indeterminate_delete_may_have_happened_or_not() -> None:
    for status in (503, None):
        script = Script(settled=False).create("s", 1, at=1).delete("s", at=2, status=status)
        assert script.final("s", status=404).check().valid
        script = Script(settled=False).create("s", 1, at=1).delete("s", at=2, status=status)
        assert script.final("s", 1).check().valid


def test_a_write_without_an_answer_may_land_after_later_writes() -> None:
    script = Script().create("s", 1, at=1).update("s", 2, at=2, status=None)
    script.update("s", 3, at=3).read("s", at=4, value=3, client=1)
    verdict = script.read("s", at=5, value=2, client=1).final("s", 2).check()
    assert verdict.valid, verdict.anomalies


def test_an_indeterminate_create_is_never_looked_for() -> None:
    script = Script(settled=False).write(Kind.CREATE, "s", 1, at=1, status=503, ttl=TTL)
    verdict = script.final("s", status=404).check()
    assert verdict.valid and verdict.indeterminate == 1


def test_a_read_racing_a_write_may_see_either_value() -> None:
    for value in (1, 2):
        script = Script().create("s", 1, at=1).update("s", 2, at=2)
        script.read("s", at=1.995, value=value, client=1, took=0.1)
        assert script.final("s", 2).check().valid


def test_a_404_before_the_create_was_acknowledged_or_after_a_delete_began_is_true() -> None:
    script = Script().create("s", 1, at=1).read("s", at=1.005, status=404)
    script.delete("s", at=2, status=None).read("s", at=2.005, status=404)
    assert script.final("s", 1).check().valid


def test_a_session_past_its_ttl_may_be_gone() -> None:
    script = Script().create("s", 1, at=1).read("s", at=1 + TTL, status=404)
    assert script.final("s", status=404, at=1 + TTL).check().valid


def test_reads_of_another_clients_session_may_trail_its_latest_write() -> None:
    script = Script().create("s", 1, at=1).update("s", 2, at=2)
    verdict = script.read("s", at=2.0105, value=1, client=2).final("s", 2).check()
    assert verdict.valid
    assert verdict.stale_elsewhere == 1
    assert math.isclose(verdict.stale_elsewhere_max_lag, 0.0005, abs_tol=1e-9)


def test_a_503_during_a_fault_or_before_every_replica_has_failed_back_is_allowed() -> None:
    script = Script(settled=False).create("s", 1, at=1)
    for replica, settled_from in (("A", 3.0), ("B", 6.0)):
        for tenth in range(100):
            at = tenth / 10
            sample = FleetSample(replica, at, at + 0.005, at >= settled_from)
            script.history.samples.append(sample)
    script.history.faults.append(FaultWindow("redis-kill", "redis", 7, 8))
    script.read("s", at=5, status=503).read("s", at=7.5, status=503)
    verdict = script.read("s", at=8.5, status=503).final("s", 1).check()
    assert kinds(verdict) == [AnomalyKind.LATE_503]  # the one at 8.5 only
    assert verdict.anomalies[0].op is not None and verdict.anomalies[0].op.invoked == 8.5


def test_a_clean_history_passes_and_is_counted() -> None:
    script = Script().create("s", 1, at=1).update("s", 2, at=2).read("s", at=3, value=2)
    script.create("t", 3, at=1).delete("t", at=2).read("t", at=3, status=404)
    verdict = script.final("s", 2).final("t", status=404).check()
    assert verdict.valid
    assert verdict.acknowledged == {Kind.CREATE: 2, Kind.UPDATE: 1, Kind.DELETE: 1}
    assert verdict.reads == 2 and verdict.final_reads == 2
    assert "acknowledged 4 writes" in verdict.summary()


# --- the settled-fleet arithmetic ------------------------------------------------------------


def test_settled_intervals_need_every_replica_and_no_fault() -> None:
    samples = [
        FleetSample("A", 0, 0.1, False),
        FleetSample("A", 1, 1.1, True),
        FleetSample("A", 4, 4.1, True),
        FleetSample("A", 5, 5.1, None),  # fell out somewhere after the request at 4
        FleetSample("B", 0, 0.1, True),
    ]
    faults = [FaultWindow("pause", "redis", 2, 3)]
    # the fault, and the moment replicas take to learn of what it changed
    assert settled_intervals(samples, ["A", "B"], faults) == [(1.1, 2), (3 + NOTICE_WITHIN, 4)]
    assert settled_intervals(samples, ["A", "B", "C"], []) == []


def test_interval_helpers() -> None:
    assert intersect([(0, 5), (6, 9)], [(4, 7)]) == [(4, 5), (6, 7)]
    assert subtract([(0, 10)], (2, 3)) == [(0, 2), (3, 10)]
    assert subtract([(0, 1)], (2, 3)) == [(0, 1)]
    assert subtract([(2, 3)], (0, 10)) == []


def test_a_fault_that_leaves_redis_alone_excuses_no_503() -> None:
    script = Script().create("s", 1, at=1)
    script.history.faults.append(FaultWindow("clock-step", "A", 2, 8, affects_redis=False))
    verdict = script.read("s", at=5, status=503).final("s", 1).check()
    assert kinds(verdict) == [AnomalyKind.LATE_503]


def test_a_stale_read_before_the_fleet_recovered_is_excused_and_reported() -> None:
    """The README: no coherence between memory tiers during an outage. Once every replica has
    failed back, a stale read counts."""
    script = Script(settled=False).create("s", 1, at=1).update("s", 2, at=2)
    for replica in script.history.replicas:
        script.history.samples.append(FleetSample(replica, 0, 0.01, False))
        script.history.samples.append(FleetSample(replica, 5, 5.01, True))
    script.read("s", at=3, value=1, client=1).read("s", at=6, value=1, client=1)
    verdict = script.final("s", 2).check()
    assert kinds(verdict) == [AnomalyKind.STALE, AnomalyKind.STALE]
    assert [a.op.invoked for a in verdict.counted if a.op] == [6]
    assert [a.op.invoked for a in verdict.excused if a.op] == [3]
    assert "not counted (documented limits): stale read 1" in verdict.summary()


def test_a_write_held_by_a_killed_replica_then_by_a_redis_that_lost_its_data_is_excused() -> None:
    """Two failures: the replica that wrote it died with its memory tier, then Redis restarted
    empty. The loss (at the end, a 404 meanwhile, a delete undone by an older copy another
    replica re-seeded) is reported as that, not counted."""
    script = Script(settled=False).create("s", 1, at=1).update("s", 2, at=2)
    script.create("t", 1, at=1.5).delete("t", at=2.5)
    faults = script.history.faults
    faults.append(FaultWindow("replica-kill-mid-outage", "A + redis:1", 3, 4, False, False))
    faults.append(FaultWindow("redis-restart-empty", "redis:1", 5, 6, loses_data=True))
    verdict = script.read("s", at=7, status=404).final("s", status=404).final("t", 1).check()
    assert sorted(kinds(verdict)) == sorted(
        [AnomalyKind.FALSE_404, AnomalyKind.LOST, AnomalyKind.RESURRECTED]
    )
    assert verdict.counted == [] and verdict.wrong == 0 and verdict.false_404s == 0
    assert all("double failure" in anomaly.excused for anomaly in verdict.anomalies)


def test_a_replica_killed_after_redis_lost_its_data_before_it_re_seeded_is_excused() -> None:
    """Redis restarted empty at 5-6; A, which alone held the session in memory, was killed at
    6.5, still in fallback (seed 12 round 12). Had a sample shown A settled in between, it had
    re-seeded: the loss counts."""
    for seen_settled, counted in [(False, 0), (True, 1)]:
        script = Script(settled=False).create("s", 1, at=1).update("s", 2, at=2)
        faults = script.history.faults
        faults.append(FaultWindow("redis-restart-empty", "redis:1", 5, 6, loses_data=True))
        faults.append(FaultWindow("replica-kill", "A", 6.5, 7, False, False))
        if seen_settled:
            script.history.samples.append(FleetSample("A", 6.2, 6.3, True))
        verdict = script.final("s", status=404).check()
        assert kinds(verdict) == [AnomalyKind.LOST] and len(verdict.counted) == counted


def test_an_older_copy_re_seeded_after_a_double_failure_is_excused_for_every_reader() -> None:
    """Client 1 deletes through A, A dies, Redis restarts empty, B re-seeds its older copy:
    client 2, who had read the newer value, reads the older one (a stale read, not a
    resurrection to it). The same double failure."""
    script = Script(settled=False).create("t", 1, at=1).update("t", 2, at=1.5)
    script.read("t", at=1.8, value=2, client=2).delete("t", at=2.5)
    faults = script.history.faults
    faults.append(FaultWindow("replica-kill", "A", 3, 4, False, False))
    faults.append(FaultWindow("redis-restart-empty", "redis:1", 5, 6, loses_data=True))
    settled_fleet(script, 6.5, 8)  # the fleet had recovered: no outage excuses the read
    verdict = script.read("t", at=7, value=1, client=2).final("t", 1).check()
    assert AnomalyKind.STALE in kinds(verdict) and verdict.counted == []


def test_a_kill_while_the_acknowledgement_was_on_its_way_is_after_the_write() -> None:
    """The replica answered 204, then died before the client read the answer."""
    script = Script(settled=False).create("t", 1, at=1).delete("t", at=2.5)  # 2.5 → 2.51
    faults = script.history.faults
    faults.append(FaultWindow("replica-kill", "A", 2.505, 4, False, False))
    faults.append(FaultWindow("redis-restart-empty", "redis:1", 5, 6, loses_data=True))
    verdict = script.final("t", 1).check()
    assert kinds(verdict) == [AnomalyKind.RESURRECTED] and verdict.counted == []


def test_a_kill_inside_a_longer_fault_counts_from_when_it_happened() -> None:
    """Redis killed at 3, the replica killed at 4: a write acknowledged (journalled) at 3.5 was
    held by the replica that died. One acknowledged after the kill, by its new process, is not
    excused."""
    script = Script(settled=False).create("s", 1, at=1).update("s", 2, at=3.5)
    script.create("t", 1, at=4.5)
    faults = script.history.faults
    kill = FaultWindow("replica-kill-mid-outage", "A + redis:1", 3, 5, False, True, False, 4.0)
    faults.append(kill)
    faults.append(FaultWindow("redis-restart-empty", "redis:1", 6, 7, loses_data=True))
    verdict = script.final("s", status=404).final("t", status=404).check()
    assert [(a.session, bool(a.excused)) for a in verdict.anomalies] == [
        ("s", True),
        ("t", False),
    ]
