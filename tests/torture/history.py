"""What a torture run records, and nothing else: every client operation, the fleet's persistence
samples, the nemesis's fault windows, the cold replica's final reads and what the harness saw go
wrong with the replicas themselves (one that could not start again, a fleet that never settled).

Times are seconds on the test process's monotonic clock since the run began, so one history
orders everything that happened whatever the replicas' wall clocks did.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

# The final reads are made by a replica started after the faults; they get this client number.
COLD_CLIENT = -1


class Kind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    READ = "read"


@dataclass(frozen=True, slots=True)
class Op:
    """One HTTP request as a client saw it.

    `value` is the number written (create, update: unique in the whole run) or the number a
    read returned; `status` is None when no answer came (timeout, connection refused); `error`
    is the API's error code or the exception's name; `ttl` is a create's `ttl_seconds`.
    """

    client: int
    kind: Kind
    session: str | None
    value: int | None
    invoked: float
    completed: float
    replica: str
    status: int | None
    error: str = ""
    ttl: float | None = None

    @property
    def is_write(self) -> bool:
        return self.kind is not Kind.READ

    @property
    def acknowledged(self) -> bool:
        """A write the fleet promised to keep (2xx)."""
        return self.is_write and self.status is not None and 200 <= self.status < 300

    @property
    def indeterminate(self) -> bool:
        """A write that may or may not have happened (5xx, 404, timeout, no connection)."""
        return self.is_write and not self.acknowledged

    @property
    def definite(self) -> bool:
        """A read with an answer about the session: its data (200) or none (404)."""
        return self.kind is Kind.READ and self.status in (200, 404)

    def describe(self) -> str:
        outcome = "no answer" if self.status is None else str(self.status)
        if self.error:
            outcome += f" {self.error}"
        value = "" if self.value is None else f" v={self.value}"
        who = "cold" if self.client == COLD_CLIENT else f"c{self.client}"
        return (
            f"[{self.invoked:8.3f} → {self.completed:8.3f}] {who} {self.kind.value}{value}"
            f" via {self.replica}: {outcome}"
        )


@dataclass(frozen=True, slots=True)
class FleetSample:
    """One `GET /api/session-metrics/persistence` of a fleet replica. `settled`: Redis connected,
    no fallback, no refusal, an empty journal; None: the replica did not answer."""

    replica: str
    invoked: float
    completed: float
    settled: bool | None
    detail: str = ""


# Faults that SIGKILL a fleet replica (its target names it first: "A" or "A + redis:port").
REPLICA_KILLS = frozenset({"replica-kill", "replica-kill-mid-outage", "journal-full-kill"})


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """From the nemesis starting a fault to its healing (the server back, the clock reset).

    `affects_redis`: the fault takes Redis, or its writes, away from the replicas, which may
    take a moment to notice it (a clock step or a replica's crash does not). `redis_serves_reads`:
    Redis kept answering reads throughout (OOM, NOREPLICAS), so a read answered 503 meanwhile was
    refused for no reason a user can see. `loses_data`: Redis comes back without its data (an
    empty restart, a kill of a server without persistence). `failed`: why the deployment did not
    do its part (no replica promoted in time, ...); such a window lasts until it was healed."""

    kind: str
    target: str
    started: float
    ended: float
    redis_serves_reads: bool = False
    affects_redis: bool = True
    loses_data: bool = False
    killed_at: float | None = None  # when it SIGKILLed its replica (its memory tier lost)
    failed: str = ""

    @property
    def kill(self) -> tuple[str, float] | None:
        """The fleet replica this fault SIGKILLed, and when; None if it killed none."""
        if self.kind not in REPLICA_KILLS:
            return None
        replica = self.target.split(" + ")[0]
        return replica, self.started if self.killed_at is None else self.killed_at

    def covers(self, at: float) -> bool:
        return self.started <= at <= self.ended


@dataclass(frozen=True, slots=True)
class Incident:
    """Something the harness saw go wrong outside the HTTP answers (a replica that could not
    start again, a fleet that never settled): a user-visible failure of its own."""

    at: float
    replica: str
    what: str


@dataclass
class History:
    replicas: list[str]
    ops: list[Op] = field(default_factory=list)
    final_reads: list[Op] = field(default_factory=list)
    samples: list[FleetSample] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)

    def dump(self, path: Path) -> None:
        """The whole history as JSON, for reading a failure after the run."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=None))

    @classmethod
    def load(cls, path: Path) -> History:
        raw: dict[str, Any] = json.loads(path.read_text())
        return cls(
            replicas=raw["replicas"],
            ops=[_op(item) for item in raw["ops"]],
            final_reads=[_op(item) for item in raw["final_reads"]],
            samples=[FleetSample(**item) for item in raw["samples"]],
            faults=[FaultWindow(**item) for item in raw["faults"]],
            incidents=[Incident(**item) for item in raw["incidents"]],
        )


def _op(item: dict[str, Any]) -> Op:
    return Op(**{**item, "kind": Kind(item["kind"])})
