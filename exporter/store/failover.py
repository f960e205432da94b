"""The tiered store's outage state machine: pure state, the clocks passed in, no I/O.

What this replica knows of Redis, and what follows for reads and writes:

- `redis` (normal): reads and writes go to Redis.
- `fallback` (Redis unreachable): reads are served from memory and the journal, writes are
  journalled. Entered once per outage (`failed()` says whether this call began one: that is the
  failover to count), left by `failed_back()`, which counts `failbacks`.
- `refusing` (Redis answers but refuses writes: read-only, out of memory, too few replicas, ...):
  reads still go to Redis, writes are journalled. Independent of the fallback.

Whether a miss is final after an outage is the fleet's question, not this replica's alone:
`fleet.FleetView` answers it.

    >>> state = Failover(wall=lambda: 1e9)
    >>> state.failed(), state.failed(), state.failovers
    (True, False, 1)
    >>> state.failed_back(), state.mode
    (0.0, 'redis')
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Failover:
    wall: Callable[[], float] = field(default=time.time, repr=False)  # for the API's "since"
    fallback_active: bool = False
    fallback_since: float | None = None  # wall clock, for the API
    fallback_cause: str = ""  # what Redis did (unreachable, too slow, ...): a 503 says it
    failovers: int = 0
    failbacks: int = 0
    writes_refused: str | None = None
    writes_refused_since: float | None = None

    @property
    def mode(self) -> str:
        if self.fallback_active:
            return "fallback"
        return "refusing" if self.writes_refused is not None else "redis"

    def failed(self, cause: str = "Redis is unreachable") -> bool:
        """Redis did not answer: enter the fallback. True if this began an outage."""
        if self.fallback_active:
            return False
        self.fallback_active = True
        self.fallback_since = self.wall()
        self.fallback_cause = cause
        self.failovers += 1
        return True

    def failed_back(self) -> float:
        """The journal is replayed: leave the fallback; the outage's length in seconds."""
        since = self.fallback_since if self.fallback_since is not None else self.wall()
        self.fallback_active = False
        self.fallback_since = None
        self.fallback_cause = ""
        self.failbacks += 1
        return max(0.0, self.wall() - since)

    def refused(self, reason: str) -> bool:
        """Redis refuses writes for `reason`. True if that is news (a new or another reason)."""
        if self.writes_refused == reason:
            return False
        if self.writes_refused is None:
            self.writes_refused_since = self.wall()
        self.writes_refused = reason
        return True

    def accepted(self) -> tuple[str, float] | None:
        """A write went through again: (the reason it ended, seconds it lasted), or None if
        writes were not refused."""
        reason, since = self.writes_refused, self.writes_refused_since
        if reason is None:
            return None
        self.writes_refused = self.writes_refused_since = None
        return reason, max(0.0, self.wall() - (since if since is not None else self.wall()))
