"""The fleet's clock: Redis's wall time, carried forward by this process's monotonic clock.

Expiry and write versions must not depend on a replica's wall clock being right: a replica whose
clock was stepped back an hour gave its new sessions an expiry in the past and its outage writes
versions older than what they replaced. So the store never reads the host's wall clock for those:

- `now()` is Redis's time as last sampled (`TIME`, corrected by half the round trip), plus the
  monotonic seconds since. A step of the host's wall clock changes nothing; drift between samples
  is the monotonic clock's (parts per million), and every sample resets it. Until the first sample
  (no Redis, or Redis unreachable at start-up) it starts from the host's wall clock.
- `version()` is a hybrid logical clock: nanoseconds of `now()`, but always greater than every
  version this process issued or was told of (`after`), so an update is newer than what it read
  even when two replicas' estimates of Redis's time differ by a few microseconds.

    >>> ticks = iter([100.0, 101.5])
    >>> clock = FleetClock(monotonic=lambda: next(ticks), wall=lambda: 5_000.0)
    >>> clock.sync(server_time=7_000.0, sent=100.0, received=100.0)
    >>> clock.now()  # 1.5 s later by the monotonic clock
    7001.5
"""

from __future__ import annotations

import time
from collections.abc import Callable


class FleetClock:
    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._monotonic = monotonic
        self._wall = wall
        self._base_time = wall()
        self._base_tick = monotonic()
        self.synced = False
        self._last_version = 0

    def now(self) -> float:
        """Seconds since the epoch, as Redis counts them."""
        return self._base_time + (self._monotonic() - self._base_tick)

    def sync(self, server_time: float, sent: float, received: float) -> None:
        """Redis answered `TIME` with `server_time` to a request sent at monotonic `sent` and
        answered at `received`: its clock read `server_time` about halfway between."""
        self._base_time = server_time + (received - sent) / 2
        self._base_tick = received
        self.synced = True

    def offset(self) -> float:
        """How far this host's wall clock is from Redis's (seconds; diagnostics only)."""
        return self._wall() - self.now()

    def version(self, after: int = 0) -> int:
        """A version for a write made now: newer than any issued here and than `after`."""
        candidate = int(self.now() * 1e9)
        version = max(candidate, self._last_version + 1, after + 1)
        self._last_version = version
        return version
