"""The checker: pure code that reads a `History` and proves, or disproves, the fleet's write
guarantee (docs/torture.md states it). No I/O, no clock: the same history always gets the same
verdict, so every rule is unit-tested on hand-made histories (`test_checker.py`).

The model. Each session has one writer at a time (the load guarantees it: the client that
created a session is the only one that ever writes it), so its writes form a sequence
create, update, ..., [delete], and every written value is unique in the run. A write is
*acknowledged* (2xx) or *indeterminate* (anything else: it may or may not have happened). An
indeterminate write that got an answer happened, if at all, before its answer; one that got no
answer (timeout, connection cut) may still take effect at any later time, even after the
writer's next write. Sessions are created with `ttl_seconds` and updated without, so each lives
from its create for its TTL; `slack` absorbs the distance between the replicas' clocks and ours.

What is wrong (each an `Anomaly`):

- at the end, read by a cold replica: an acknowledged session missing (`LOST`), holding an older
  value than its last acknowledged write (`OLDER`), a deleted one back (`RESURRECTED`), a value
  never written (`PHANTOM`), one alive past its TTL (`OUTLIVED`), or no answer (`UNVERIFIED`);
- during the load: a value never written (or not yet), a value older than one the same client had
  seen acknowledged or read before (`STALE`; `RESURRECTED` when it had seen its delete), a read
  past the TTL answered 200 (`OUTLIVED`), a 404 for a live session (`FALSE_404`: the create was
  acknowledged before the request began, no delete had begun, within the TTL). A stale read
  made before every replica had failed back from a fault is reported but *excused*: the README
  documents that replicas' memory tiers are not coherent during an outage (the product contract's
  "memory tiers must never serve a session another replica changed or deleted" says otherwise:
  one of the two has to give, and `OUTAGE_EXCUSE` is where the checker takes sides);
- a 503 for a request made while every fleet replica reported failback with an empty journal and
  no fault was going on (`LATE_503`), a read answered 503 while Redis was serving reads of a
  live session every replica had replayed before the refusal began (`UNSERVED_READ`: the fleet
  was seen settled after its last write, and Redis has not lost its data since; a miss of a
  deleted or expired one, or of one a replica may still hold in its journal, is doubtful; one
  whose 503 says the replica was too slow, its own Redis call timed out or its loop stalled, is
  reported, not counted), and anything the harness itself saw go wrong (`INCIDENT`).

A write lost to two failures (its replica killed, then Redis's data lost) is reported under
"not counted", like a stale read during an outage: the guarantee is for single failures.

Reads of another client's session may trail its latest write by the coherence window (the
README's "not guaranteed"): they are counted, `stale_elsewhere`, not judged.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from tests.torture.history import FaultWindow, FleetSample, History, Kind, Op

# The state a write leaves a session in: its value, or DELETED.
DELETED = -1
State = int

DEFAULT_SLACK = 0.5


class AnomalyKind(StrEnum):
    LOST = "lost write"
    OLDER = "older value"
    RESURRECTED = "deleted session back"
    PHANTOM = "value never written"
    STALE = "stale read"
    OUTLIVED = "outlived its TTL"
    FALSE_404 = "false 404"
    LATE_503 = "503 after failback"
    UNSERVED_READ = "read refused while Redis served reads"
    UNVERIFIED = "final read failed"
    INCIDENT = "fleet incident"


# What the table calls "wrong afterwards": the cold replica's view of acknowledged writes.
WRONG_KINDS = frozenset(
    {AnomalyKind.LOST, AnomalyKind.OLDER, AnomalyKind.RESURRECTED, AnomalyKind.PHANTOM}
)


# Replicas learn what a fault changed in Redis (a new master, so a new data epoch whose last
# writes they re-send) at their next fleet sync, every retry interval (0.2 s in the torture
# fleet), and of each other's re-settling at the one after. A planned failover leaves every
# replica connected, so the monitor may see them settled throughout: a 503 this soon after such
# a fault ends is the protocol at work, not a late one.
NOTICE_WITHIN = 0.5


# A replica whose own Redis call timed out (the machine was slow) is in an outage as far as it can
# tell, and its 503 names that cause (`Recovery.not_held`); one whose loop stalled answers 503
# `store_busy` (backpressure, for that request only). Neither refused a read because Redis
# refused writes.
SLOW_REPLICA = ("Redis did not answer in time", "store_busy")
SLOW_REPLICA_EXCUSE = (
    "the answering replica was too slow (its own Redis call timed out, or its loop stalled: a"
    " loaded machine), and its 503 says so"
)


# Why a stale read while the fleet had not recovered from a fault is not counted against it.
OUTAGE_EXCUSE = (
    "during an outage, before every replica had failed back: the README's documented limit"
    " (no coherence between replicas' memory tiers during an outage)"
)


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: AnomalyKind
    final: bool  # found by the cold replica's final reads, not during the load
    session: str | None
    detail: str
    op: Op | None = None
    excused: str = ""  # a documented limit that covers it: reported, not counted

    def describe(self) -> str:
        where = "final" if self.final else "load"
        session = f" {self.session}" if self.session else ""
        return f"{self.kind.value} ({where}){session}: {self.detail}"


@dataclass
class Verdict:
    anomalies: list[Anomaly] = field(default_factory=list)
    acknowledged: Counter[Kind] = field(default_factory=Counter)
    indeterminate: int = 0
    reads: int = 0
    final_reads: int = 0
    stale_elsewhere: int = 0
    stale_elsewhere_max_lag: float = 0.0

    @property
    def counted(self) -> list[Anomaly]:
        return [anomaly for anomaly in self.anomalies if not anomaly.excused]

    @property
    def excused(self) -> list[Anomaly]:
        return [anomaly for anomaly in self.anomalies if anomaly.excused]

    @property
    def valid(self) -> bool:
        return not self.counted

    def count(self, *kinds: AnomalyKind, final: bool | None = None) -> int:
        return sum(
            1
            for anomaly in self.counted
            if anomaly.kind in kinds and (final is None or anomaly.final == final)
        )

    @property
    def wrong(self) -> int:
        """Acknowledged writes the cold replica found wrong: the issue's "wrong afterwards"."""
        return self.count(*WRONG_KINDS, final=True)

    @property
    def false_404s(self) -> int:
        return self.count(AnomalyKind.FALSE_404)

    @property
    def late_503s(self) -> int:
        return self.count(AnomalyKind.LATE_503)

    def summary(self) -> str:
        acknowledged = sum(self.acknowledged.values())
        return (
            f"acknowledged {acknowledged} writes ({self.acknowledged[Kind.CREATE]} creates, "
            f"{self.acknowledged[Kind.UPDATE]} updates, {self.acknowledged[Kind.DELETE]} "
            f"deletes), {self.indeterminate} indeterminate, {self.reads} reads, "
            f"{self.final_reads} final reads; wrong {self.wrong}, false 404s "
            f"{self.false_404s}, 503s after failback {self.late_503s}; anomalies: "
            f"{_tally(self.counted)}; not counted (documented limits): {_tally(self.excused)}; "
            f"stale reads of others' sessions {self.stale_elsewhere} (max "
            f"{self.stale_elsewhere_max_lag * 1000:.1f} ms after the newer write's ack)"
        )


def _tally(anomalies: list[Anomaly]) -> str:
    kinds = Counter(anomaly.kind for anomaly in anomalies)
    return ", ".join(f"{kind.value} {n}" for kind, n in sorted(kinds.items())) or "none"


@dataclass(slots=True)
class SessionLog:
    """A session's writes in order (the create first), with its lifetime on our clock."""

    writes: list[Op]
    live_until: float  # requests that end before this see the session alive
    dead_after: float  # requests that begin after this see it expired
    index: dict[State, int] = field(default_factory=dict)  # written value → position

    @property
    def create(self) -> Op:
        return self.writes[0]

    def state(self, position: int) -> State:
        write = self.writes[position]
        return DELETED if write.kind is Kind.DELETE else _value(write)

    def last_acknowledged(self, before: float = math.inf) -> int | None:
        """Position of the last write acknowledged before `before` (our clock)."""
        found = None
        for position, write in enumerate(self.writes):
            if write.acknowledged and write.completed < before:
                found = position
        return found

    def final_candidates(self) -> set[State]:
        """States the session may be in once everything has settled: the last acknowledged
        write's, or that of an indeterminate write that may have taken effect after it."""
        last = self.last_acknowledged()
        assert last is not None  # only sessions whose create was acknowledged are logged
        states = {self.state(last)}
        for position, write in enumerate(self.writes):
            if write.indeterminate and (position > last or write.status is None):
                states.add(self.state(position))
        return states

    def may_land_late(self, position: int) -> bool:
        """A write that got no answer may take effect after the writer's later writes."""
        return self.writes[position].status is None

    def delete_begun(self, before: float, other_than: Op) -> bool:
        return any(
            w.kind is Kind.DELETE and w.invoked < before and w is not other_than
            for w in self.writes
        )


def check(history: History, slack: float = DEFAULT_SLACK) -> Verdict:
    """The verdict on one run: every anomaly found, and what was counted."""
    verdict = Verdict()
    sessions = session_logs(history.ops, slack)
    settled = settled_intervals(history.samples, history.replicas, history.faults)
    count_operations(history, verdict)
    finals = judge_final_reads(history, sessions)
    verdict.anomalies.extend(excuse_double_failures(finals, sessions, history))
    load = excuse_outages(judge_load(history.ops, sessions, verdict), settled)
    verdict.anomalies.extend(excuse_double_failures(load, sessions, history))
    verdict.anomalies.extend(judge_503s(history, settled, sessions))
    verdict.anomalies.extend(
        Anomaly(AnomalyKind.INCIDENT, False, None, f"{i.replica} at {i.at:.3f}: {i.what}")
        for i in history.incidents
    )
    return verdict


def count_operations(history: History, verdict: Verdict) -> None:
    for op in history.ops:
        if op.acknowledged:
            verdict.acknowledged[op.kind] += 1
        elif op.indeterminate:
            verdict.indeterminate += 1
        else:
            verdict.reads += 1
    verdict.final_reads = len(history.final_reads)


def session_logs(ops: Iterable[Op], slack: float) -> dict[str, SessionLog]:
    """Every session whose create was acknowledged, with its writes in invocation order."""
    writes: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.is_write and op.session is not None:
            writes[op.session].append(op)
    logs = {}
    for session, ordered in writes.items():
        ordered.sort(key=lambda op: op.invoked)
        create = ordered[0]
        if create.kind is not Kind.CREATE or not create.acknowledged or create.ttl is None:
            continue
        log = SessionLog(
            ordered,
            live_until=create.invoked + create.ttl - slack,
            dead_after=create.completed + create.ttl + slack,
        )
        log.index = {_value(w): i for i, w in enumerate(ordered) if w.kind is not Kind.DELETE}
        logs[session] = log
    return logs


def judge_final_reads(history: History, sessions: dict[str, SessionLog]) -> Iterator[Anomaly]:
    finals = {read.session: read for read in history.final_reads}
    for session, log in sessions.items():
        read = finals.get(session)
        if read is None:
            yield Anomaly(AnomalyKind.UNVERIFIED, True, session, "never read back at the end")
        else:
            yield from judge_final_read(log, read)


def judge_final_read(log: SessionLog, read: Op) -> Iterator[Anomaly]:
    session = read.session
    if not read.definite:
        yield Anomaly(AnomalyKind.UNVERIFIED, True, session, read.describe(), read)
        return
    if read.invoked >= log.dead_after:
        if read.status == 200:
            yield outlived(log, read, final=True)
        return
    candidates = log.final_candidates()
    if read.status == 404:
        if DELETED not in candidates and read.completed < log.live_until:
            last = log.writes[log.last_acknowledged() or 0]
            detail = f"404, but {last.describe()}"
            yield Anomaly(AnomalyKind.LOST, True, session, detail, read)
        return
    yield from judge_value(log, read, candidates, final=True)


def judge_value(
    log: SessionLog, read: Op, candidates: set[State], *, final: bool
) -> Iterator[Anomaly]:
    """A 200 at the end: the value must be one the session may hold."""
    value = _value(read)
    position = log.index.get(value)
    if position is None:
        yield phantom(read, final)
        return
    if value in candidates:
        return
    last = log.last_acknowledged()
    assert last is not None
    kind = AnomalyKind.RESURRECTED if log.state(last) == DELETED else AnomalyKind.OLDER
    detail = f"read v={value}, but {log.writes[last].describe()}"
    yield Anomaly(kind, final, read.session, detail, read)


def phantom(read: Op, final: bool) -> Anomaly:
    detail = f"read v={read.value}, which no write of this session had begun to write"
    return Anomaly(AnomalyKind.PHANTOM, final, read.session, detail, read)


def outlived(log: SessionLog, read: Op, *, final: bool) -> Anomaly:
    detail = (
        f"answered 200 {read.invoked - log.create.completed:.1f} s after its create was "
        f"acknowledged, with ttl_seconds={log.create.ttl}"
    )
    return Anomaly(AnomalyKind.OUTLIVED, final, read.session, detail, read)


def judge_load(
    ops: list[Op], sessions: dict[str, SessionLog], verdict: Verdict
) -> Iterator[Anomaly]:
    """Each client's operations in order, with what that client has seen of each session."""
    seen: dict[tuple[int, str], int] = {}  # (client, session) → latest write position seen
    for op in sorted(ops, key=lambda op: (op.client, op.invoked)):
        log = sessions.get(op.session or "")
        if log is None:
            continue
        key = (op.client, op.session or "")
        if op.status == 404:
            yield from judge_404(log, op)
        elif op.kind is Kind.READ and op.status == 200:
            yield from judge_read(log, op, seen.get(key), verdict)
            position = log.index.get(_value(op))
            if position is not None:
                seen[key] = max(seen.get(key, position), position)
        if op.acknowledged:
            position = log.writes.index(op)
            seen[key] = max(seen.get(key, position), position)


def excuse_outages(anomalies: Iterable[Anomaly], settled: list[Interval]) -> Iterator[Anomaly]:
    """Stale reads made while the fleet had not recovered from a fault are the documented
    limit; made once every replica had failed back, they count."""
    for anomaly in anomalies:
        stale = anomaly.kind in (AnomalyKind.STALE, AnomalyKind.RESURRECTED)
        if stale and anomaly.op is not None and not within(anomaly.op.invoked, settled):
            anomaly = dataclasses.replace(anomaly, excused=OUTAGE_EXCUSE)
        yield anomaly


def within(at: float, intervals: list[Interval]) -> bool:
    return any(start <= at <= end for start, end in intervals)


def judge_404(log: SessionLog, op: Op) -> Iterator[Anomaly]:
    """A 404 for a session whose create was acknowledged before the request began, with no
    delete begun before it ended, within its TTL: the fleet said a live session is unknown."""
    if op.kind is Kind.CREATE or op.invoked <= log.create.completed:
        return
    if log.delete_begun(op.completed, other_than=op) or op.completed >= log.live_until:
        return
    detail = f"{op.kind.value} answered 404; created: {log.create.describe()}"
    yield Anomaly(AnomalyKind.FALSE_404, False, op.session, detail, op)


def judge_read(log: SessionLog, read: Op, seen: int | None, verdict: Verdict) -> Iterator[Anomaly]:
    value = _value(read)
    position = log.index.get(value)
    if position is None or log.writes[position].invoked > read.completed:
        yield phantom(read, False)
        return
    if read.invoked >= log.dead_after:
        yield outlived(log, read, final=False)
    if seen is not None and position < seen and not log.may_land_late(position):
        kind = AnomalyKind.RESURRECTED if log.state(seen) == DELETED else AnomalyKind.STALE
        detail = f"read v={value} after this client had seen {log.writes[seen].describe()}"
        yield Anomaly(kind, False, read.session, detail, read)
    count_stale_elsewhere(log, read, position, verdict)


def count_stale_elsewhere(log: SessionLog, read: Op, position: int, verdict: Verdict) -> None:
    """A read older than a write another client had acknowledged before the read began."""
    newest = log.last_acknowledged(before=read.invoked)
    if newest is None or position >= newest or log.may_land_late(position):
        return
    verdict.stale_elsewhere += 1
    lag = read.invoked - log.writes[newest].completed
    verdict.stale_elsewhere_max_lag = max(verdict.stale_elsewhere_max_lag, lag)


def judge_503s(
    history: History, settled: list[Interval], sessions: dict[str, SessionLog]
) -> Iterator[Anomaly]:
    serving = [fault for fault in history.faults if fault.redis_serves_reads]
    writes_ended: dict[str | None, list[float]] = defaultdict(list)
    for op in history.ops:
        if op.is_write:
            writes_ended[op.session].append(op.completed)

    losses = [fault.started for fault in history.faults if fault.loses_data]

    def in_redis(session: str | None, before: float, read_at: float) -> bool:
        """Every replica was seen settled after the session's last write, before `before`, and
        Redis did not lose its data since (what that cost is judged by the loss rules)."""
        last = max(writes_ended[session], default=math.inf)
        if any(last <= lost < read_at for lost in losses):
            return False
        return any(max(start, last) < min(end, before) for start, end in settled)

    def live(op: Op) -> bool:
        """The session certainly existed: created, not deleted nor expired before the read."""
        log = sessions.get(op.session or "")
        return (
            log is not None
            and op.completed < log.live_until
            and not log.delete_begun(op.completed, other_than=op)
        )

    answered = [(op, False) for op in history.ops] + [(op, True) for op in history.final_reads]
    for op, final in answered:
        if op.status != 503:
            continue
        if any(start <= op.invoked and op.completed <= end for start, end in settled):
            detail = f"every replica had failed back with an empty journal: {op.describe()}"
            yield Anomaly(AnomalyKind.LATE_503, final, op.session, detail, op)
        if op.kind is not Kind.READ:
            continue
        for fault in serving:
            # Redis serves what it holds, and certainly holds a session only once every replica
            # was seen with an empty journal after its last write. Before that (written while
            # Redis refused writes, this time or during an earlier fault whose journals were
            # not replayed yet) it may be in a replica's journal only: a 503 is honest then.
            if (
                fault.covers(op.invoked)
                and live(op)
                and in_redis(op.session, fault.started, op.invoked)
            ):
                detail = f"during {fault.kind} on {fault.target}: {op.describe()}"
                slow = any(marker in op.error for marker in SLOW_REPLICA)
                excused = SLOW_REPLICA_EXCUSE if slow else ""
                yield Anomaly(AnomalyKind.UNSERVED_READ, final, op.session, detail, op, excused)
                break


Interval = tuple[float, float]


# What a replica's SIGKILL, then Redis's loss of its data, may cost: two failures.
# A stale read is one too: another client's older copy re-seeded over a delete this client did
# not see (seed 11 round 3).
DATA_LOSS_KINDS = frozenset(
    {
        AnomalyKind.LOST,
        AnomalyKind.OLDER,
        AnomalyKind.RESURRECTED,
        AnomalyKind.STALE,
        AnomalyKind.FALSE_404,
    }
)
DOUBLE_FAILURE_EXCUSE = (
    "a double failure: the replica that made the write was killed (its memory tier with it),"
    " and Redis lost its data, before that replica could re-seed it: what only Redis held is gone"
    " (docs/recovery.md, Not guaranteed)"
)


def excuse_double_failures(
    anomalies: Iterable[Anomaly], sessions: dict[str, SessionLog], history: History
) -> Iterator[Anomaly]:
    """The write guarantee is for single failures. A write acknowledged through a replica that
    was then killed lives in Redis only (and in a replica that happened to read it since): if
    Redis then loses its data, it is gone. So is one whose replica is killed after Redis lost
    its data, before it failed back and re-seeded. Those anomalies are reported, not counted."""
    for anomaly in anomalies:
        log = sessions.get(anomaly.session or "")
        if (
            anomaly.kind in DATA_LOSS_KINDS
            and not anomaly.excused
            and anomaly.op is not None
            and log is not None
            and lost_with_its_replica(log, anomaly.op, history)
        ):
            anomaly = dataclasses.replace(anomaly, excused=DOUBLE_FAILURE_EXCUSE)
        yield anomaly


def lost_with_its_replica(log: SessionLog, read: Op, history: History) -> bool:
    """Whether the last write acknowledged before `read` went through a replica killed after
    it, and Redis lost its data, both before `read` began: the kill first, or the loss first
    and the kill before that replica was seen settled again (it re-seeds as it fails back:
    seed 12 round 12, killed 1.1 s after Redis came back empty, still in fallback). A kill
    after the write began came after its acknowledgement, even one before the client saw it
    complete: the answer was on its way (seed 13 round 3: a delete answered, its replica killed
    9 ms before the client's clock read the answer)."""
    position = log.last_acknowledged(before=read.invoked)
    if position is None:
        return False
    write = log.writes[position]
    faults = history.faults
    kills = [
        when
        for replica, when in (fault.kill for fault in faults if fault.kill is not None)
        if replica == write.replica and write.invoked < when < read.invoked
    ]
    settled = [
        sample.completed
        for sample in history.samples
        if sample.replica == write.replica and sample.settled
    ]
    for loss in (fault for fault in faults if fault.loses_data and fault.started < read.invoked):
        for kill in kills:
            if kill < loss.started:
                return True
            if write.completed <= loss.started < kill and not any(
                loss.ended < when < kill for when in settled
            ):
                return True
    return False


def settled_intervals(
    samples: list[FleetSample], replicas: list[str], faults: list[FaultWindow]
) -> list[Interval]:
    """When every fleet replica was known to have failed back with an empty journal and no
    fault of Redis was going on: from the answer of the sample that showed the last replica
    settled, to the request of the first sample that showed one unsettled (or a fault's start).
    A fault that leaves Redis alone (a clock step) excuses no 503."""
    fleet: list[Interval] = [(-math.inf, math.inf)]
    for replica in replicas:
        mine = [sample for sample in samples if sample.replica == replica]
        fleet = intersect(fleet, replica_settled(mine))
    for fault in faults:
        if fault.affects_redis:
            fleet = subtract(fleet, (fault.started, fault.ended + NOTICE_WITHIN))
    return fleet


def replica_settled(samples: list[FleetSample]) -> list[Interval]:
    """From the answer of a sample that showed the replica settled to the request of the last
    one that still did: between that and the next sample, which showed it unsettled, nobody
    knows when it fell out (a 503 there may be the start of a fault the monitor saw later)."""
    intervals: list[Interval] = []
    start: float | None = None
    last: float | None = None
    for sample in sorted(samples, key=lambda sample: sample.invoked):
        if sample.settled:
            if start is None:
                start = sample.completed
            last = sample.invoked
        elif start is not None and last is not None:
            if last > start:
                intervals.append((start, last))
            start = last = None
    if start is not None:
        intervals.append((start, math.inf))
    return intervals


def intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    found = []
    for a_start, a_end in left:
        for b_start, b_end in right:
            start, end = max(a_start, b_start), min(a_end, b_end)
            if start < end:
                found.append((start, end))
    return sorted(found)


def subtract(intervals: list[Interval], hole: Interval) -> list[Interval]:
    found = []
    for start, end in intervals:
        if end <= hole[0] or start >= hole[1]:
            found.append((start, end))
            continue
        if start < hole[0]:
            found.append((start, hole[0]))
        if end > hole[1]:
            found.append((hole[1], end))
    return found


def _value(op: Op) -> int:
    assert op.value is not None, op
    return op.value
