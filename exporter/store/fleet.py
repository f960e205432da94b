"""What the replicas sharing one Redis tell each other: pure records and decisions, no I/O.

Two things live in Redis beside the sessions (`RedisStore.fleet_sync` reads and writes them):

- the **data epoch**: a marker naming the data Redis holds (a token, the run id of the Redis
  process that held it when the epoch began, whether it began because the previous marker was
  gone, and which epoch last began so: the *loss*, carried into every later epoch). A Redis that
  restarted without its data, a new Sentinel master, a restart from the append-only file: each
  begins a new epoch, and every replica sees it at its next sync. A replica that missed an epoch
  (in fallback throughout, or down) still learns of a loss in it from the loss it carries;
- the **members**: one record per replica (the epoch it has settled in, whether it is settled,
  when it last wrote). Settled = its outage journal is replayed, what it had to re-seed is
  re-seeded, and it is neither in fallback nor journalling refused writes.

A miss (a session Redis does not hold) is a final 404 only when no replica may still hold that
session unreplayed: `FleetView.doubt` says why not otherwise (the API answers 503 + Retry-After).

    >>> view = FleetView("a", forget_after=10.0)
    >>> epoch = Epoch("e1", "run1", lost=False)
    >>> view.update(epoch, {"b": Member("e1", True, 100.0)}, now=100.5)
    >>> view.settle("e1"); view.doubt(now=100.6) is None
    True
    >>> view.update(Epoch("e2", "run2", lost=True), {}, now=101.0)  # Redis came back empty
    >>> view.doubt(now=101.1)
    'this replica has not settled in the current data epoch yet'
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import Enum

import orjson


@dataclass(frozen=True, slots=True)
class Epoch:
    token: str
    run_id: str  # '' when unknown (a Cluster node that did not say)
    lost: bool  # began because the previous marker was gone: the data went with it
    # The last epoch that began so (this one, if `lost`): its token and its Redis's run id.
    loss: str = ""
    loss_run_id: str = ""

    def __post_init__(self) -> None:
        if self.lost and not self.loss:  # a lost epoch is its own loss
            object.__setattr__(self, "loss", self.token)
            object.__setattr__(self, "loss_run_id", self.run_id)

    @classmethod
    def begin(cls, run_id: str, *, lost: bool, after: Epoch | None = None) -> Epoch:
        """A new epoch; one that keeps the data carries the loss of the one `after` it."""
        token = secrets.token_hex(8)
        if lost or after is None:
            return cls(token, run_id, lost)
        return cls(token, run_id, lost, after.loss, after.loss_run_id)

    def encode(self) -> bytes:
        """Three fields unless a loss is carried: the compare-and-set that begins the next epoch
        matches a marker written by an earlier version byte for byte."""
        fields = [self.token, self.run_id, str(int(self.lost))]
        if not self.lost and self.loss:
            fields += [self.loss, self.loss_run_id]
        return "|".join(fields).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> Epoch | None:
        """Three fields: no loss carried (a lost epoch is its own)."""
        if raw is None:
            return None
        fields = [*raw.decode("ascii", "replace").split("|"), "", "", "", ""]
        token, run_id, lost, loss, loss_run_id = fields[:5]
        return cls(token, run_id, lost == "1", loss, loss_run_id)


@dataclass(frozen=True, slots=True)
class Member:
    epoch: str  # the token of the epoch it last settled in
    settled: bool
    at: float  # Redis time of the record, seconds
    since: float = 0.0  # when it last became settled (its replay done): Redis time, seconds
    left: bool = False  # shut down cleanly, its journal empty: nobody waits for it

    def encode(self) -> bytes:
        fields = {"epoch": self.epoch, "settled": self.settled, "at": self.at, "since": self.since}
        if self.left:
            fields["left"] = True
        return orjson.dumps(fields)

    @classmethod
    def decode(cls, raw: bytes) -> Member | None:
        """None for a record this version cannot read (treated as an unsettled member)."""
        try:
            fields = orjson.loads(raw)
            return cls(
                str(fields["epoch"]),
                bool(fields["settled"]),
                float(fields["at"]),
                float(fields.get("since", 0.0)),
                bool(fields.get("left", False)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


class EpochChange(Enum):
    """What a replica does when it finds Redis in an epoch other than the one it settled in."""

    FIRST = "first"  # nothing settled yet (a new process): take it as it is
    KEPT = "kept"  # same data, another server or process (failover, restart with persistence):
    # re-send the writes acknowledged just before, which a new master may lack
    LOST = "lost"  # Redis restarted without its data: re-seed what this replica holds
    FLUSHED = "flushed"  # the same Redis process dropped its data (FLUSHALL): respect it


def epoch_change(settled: Epoch | None, current: Epoch, run_id_seen: str) -> EpochChange | None:
    """What to do on finding `current` when this replica last settled in `settled`, the Redis
    process then having run id `run_id_seen` (None: nothing changed)."""
    if settled is None:
        return EpochChange.FIRST
    if current.token == settled.token:
        return None
    if current.loss == settled.loss:  # no epoch since began without the data
        return EpochChange.KEPT
    # The last loss may lie in an epoch this replica never saw: Redis restarted empty, then
    # again from its append-only file, while this replica was in fallback (seed 11 round 3 of
    # the torture run: it took that for "kept" and re-seeded nothing).
    same_process = bool(run_id_seen) and current.loss_run_id == run_id_seen
    return EpochChange.FLUSHED if same_process else EpochChange.LOST


def next_epoch(current: Epoch | None, run_id: str) -> Epoch | None:
    """The epoch to begin, or None to keep `current`: a new one when the marker is gone (the data
    with it) or when another Redis process now holds the data (its run id changed)."""
    if current is None:
        return Epoch.begin(run_id, lost=True)
    if run_id and current.run_id and run_id != current.run_id:
        return Epoch.begin(run_id, lost=False, after=current)
    return None


@dataclass(slots=True)
class FleetView:
    """This replica's view of the fleet, refreshed at every sync; `doubt` is read on each miss."""

    replica: str
    forget_after: float  # a member silent this long, its record settled, is gone (crashed)
    # A member silent while it may hold writes nobody else can see (its record unsettled, or older
    # than this replica's last outage) is awaited longer: it may be starting again on its journal.
    await_unsettled: float = 120.0
    epoch: Epoch | None = None
    members: dict[str, Member] = field(default_factory=dict)
    settled_epoch: str | None = None
    # When this replica's last outage began and ended: a record written before it began cannot
    # say whether its replica went through the outage too (and journalled writes it has not
    # replayed); one written since says where that replica stood after.
    outage_began: float | None = None
    recovered_at: float | None = None
    last_seen: dict[str, float] = field(default_factory=dict)  # member -> when last heard of

    def update(self, epoch: Epoch | None, members: dict[str, Member | None], now: float) -> None:
        self.epoch = epoch
        self.members = {  # a record this version cannot read: a member that is not settled
            replica: member or Member("", False, now)
            for replica, member in members.items()
            if replica != self.replica
        }
        for replica, member in self.members.items():
            if member.left:
                self.last_seen.pop(replica, None)
            else:
                self.last_seen[replica] = max(self.last_seen.get(replica, 0.0), member.at)

    def recall(self, members: list[str], now: float) -> None:
        """Replicas known before this process started (kept beside its journal): awaited like
        members that went silent, so a restart while Redis lost the records still waits for
        them to re-seed what they hold."""
        for replica in members:
            if replica != self.replica:
                self.last_seen.setdefault(replica, now)

    def settle(self, epoch: str) -> None:
        self.settled_epoch = epoch

    def unsettle(self) -> None:
        self.settled_epoch = None

    def outage_started(self, now: float) -> None:
        if self.outage_began is None or (self.recovered_at or 0.0) >= self.outage_began:
            self.outage_began = now  # a new outage (not a further failure of the same one)

    def outage_ended(self, now: float) -> None:
        """Nobody could be heard meanwhile (no record could be written or read): silence counts
        from now, so a replica that died during the outage still has its time to come back."""
        self.recovered_at = now
        for replica, seen in self.last_seen.items():
            self.last_seen[replica] = max(seen, now)

    @property
    def settled(self) -> bool:
        return self.epoch is not None and self.settled_epoch == self.epoch.token

    def doubt(self, now: float, read_at: float | None = None) -> str | None:
        """Why a miss, of a read made at `read_at` (Redis time), may not be final right now, or
        None when it is. A replica that settled after the read began may have replayed the
        session after the read missed it."""
        if self.epoch is None:
            return "Redis lost its data; replicas are re-seeding"
        if not self.settled:
            return "this replica has not settled in the current data epoch yet"
        if read_at is not None and self.recovered_at is not None and self.recovered_at >= read_at:
            return "this replica recovered while the read was under way"
        for replica, seen in list(self.last_seen.items()):
            reason = self._doubt_member(replica, now, read_at)
            if now - seen >= (self.forget_after if reason is None else self.await_unsettled):
                del self.last_seen[replica]  # silent too long: gone (its journal waits for it)
                continue
            if reason is not None:
                return reason
        return None

    def _doubt_member(self, replica: str, now: float, read_at: float | None) -> str | None:
        member = self.members.get(replica)
        if member is None:
            return f"replica {replica} has not reported since Redis came back"
        assert self.epoch is not None
        if not member.settled or member.epoch != self.epoch.token:
            return f"replica {replica} is still recovering"
        if self.outage_began is not None and member.at < self.outage_began:
            return f"replica {replica} has not reported since the last outage"
        if read_at is not None and member.since >= read_at:
            return f"replica {replica} finished replaying while the read was under way"
        return None
