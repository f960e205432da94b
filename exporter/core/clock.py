"""The fleet's clock: Redis's wall time, carried forward by this process's monotonic clock.

Expiry and write versions must not depend on a replica's wall clock being right: a replica whose
clock was stepped back an hour gave its new sessions an expiry in the past and its outage writes
versions older than what they replaced. So the store never reads the host's wall clock for those:

- `now()` is Redis's time as sampled (`TIME`), plus the monotonic seconds since. A step of the
  host's wall clock changes nothing. A sample only says that Redis's clock read `TIME` somewhere
  between sending and receiving, so each one is an interval, intersected with what the earlier
  ones said (carried forward, widened by the most two clocks may drift apart): a slow round trip
  (an answer that waited behind Redis's fsync, or unread while this process's loop stalled)
  cannot move the clock by half of it. `now()` is the middle of the interval. Until the first
  sample (no Redis, or Redis unreachable at start-up) it starts from the host's wall clock.
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

# How fast Redis's clock may run against this host's monotonic clock: NTP slews a clock by at most
# 500 ppm. An earlier sample's interval widens by this much per second as it is carried forward.
MAX_DRIFT = 500e-6


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
        # Where Redis's clock read, at most and at least, at `_base_tick` (once synced).
        self._earliest = self._latest = self._base_time
        self.synced = False
        self._last_version = 0

    def now(self) -> float:
        """Seconds since the epoch, as Redis counts them."""
        return self._base_time + (self._monotonic() - self._base_tick)

    def sync(self, server_time: float, sent: float, received: float) -> None:
        """Redis answered `TIME` with `server_time` to a request sent at monotonic `sent` and
        answered at `received`: TIME ran between the two, so at `received` Redis's clock read
        between `server_time` and `server_time + (received - sent)`. That interval narrows the
        one the earlier samples left; one that misses it means Redis's clock itself moved (another
        server, a step): then the new sample alone counts."""
        earliest, latest = server_time, server_time + max(0.0, received - sent)
        if self.synced:
            elapsed = received - self._base_tick
            drift = abs(elapsed) * MAX_DRIFT
            was_earliest = self._earliest + elapsed - drift
            was_latest = self._latest + elapsed + drift
            if max(earliest, was_earliest) <= min(latest, was_latest):
                earliest, latest = max(earliest, was_earliest), min(latest, was_latest)
        self._earliest, self._latest = earliest, latest
        self._base_time = (earliest + latest) / 2
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
