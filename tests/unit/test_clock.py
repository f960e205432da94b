"""The fleet clock follows Redis's time through this process's monotonic clock: a step of the
host's wall clock moves nothing; versions only ever grow."""

from __future__ import annotations

from exporter.core.clock import FleetClock


class Clocks:
    def __init__(self) -> None:
        self.tick = 50.0
        self.wall = 1_000.0

    def clock(self) -> FleetClock:
        return FleetClock(monotonic=lambda: self.tick, wall=lambda: self.wall)


def test_until_synced_it_starts_from_the_host_clock_then_follows_redis() -> None:
    clocks = Clocks()
    clock = clocks.clock()
    assert clock.now() == 1_000.0 and not clock.synced
    clocks.tick = 50.2
    clock.sync(server_time=5_000.0, sent=50.0, received=50.2)  # 0.2 s round trip
    assert clock.synced and clock.now() == 5_000.1
    clocks.tick += 3
    assert abs(clock.now() - 5_003.1) < 1e-9


def test_a_stepped_wall_clock_changes_neither_time_nor_expiry() -> None:
    clocks = Clocks()
    clock = clocks.clock()
    clock.sync(server_time=5_000.0, sent=50.0, received=50.0)
    clocks.wall -= 3600  # the host's clock stepped back an hour
    clocks.tick += 1
    assert clock.now() == 5_001.0
    assert clock.offset() == (1_000.0 - 3600) - 5_001.0  # visible, for the operator


def test_versions_grow_even_when_the_clock_is_behind_what_was_read() -> None:
    clocks = Clocks()
    clock = clocks.clock()
    first = clock.version()
    assert clock.version() > first  # the same instant: still newer
    newer_elsewhere = first + 10**12  # another replica's write, 1000 s ahead of ours
    assert clock.version(after=newer_elsewhere) == newer_elsewhere + 1
    assert clock.version() > newer_elsewhere  # and we never go back below it
    clock.sync(server_time=0.0, sent=50.0, received=50.0)  # resynced far back
    assert clock.version() > newer_elsewhere
