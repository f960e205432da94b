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


def test_an_answer_that_came_late_does_not_move_the_clock() -> None:
    """Round 17 of `make torture SEED=11`: sessions of every replica expired 1.8 s early. An
    answer to TIME that waited 3.6 s (behind Redis's fsync, or unread while our loop stalled)
    put the clock 1.8 s behind Redis, and every expiry with it."""
    clocks = Clocks()
    clock = clocks.clock()
    clock.sync(server_time=5_000.0, sent=50.0, received=50.002)  # a quick round trip
    clocks.tick = 63.6
    # TIME ran at once (Redis read 5_010.0 at tick 60.0); its answer arrived 3.6 s later.
    clock.sync(server_time=5_010.0, sent=60.0, received=63.6)
    assert abs(clock.now() - 5_013.6) < 0.01  # Redis's clock now, not 1.8 s behind it


def test_each_answer_narrows_what_the_clock_knows() -> None:
    clocks = Clocks()
    clock = clocks.clock()
    clock.sync(server_time=5_000.0, sent=50.0, received=50.2)  # 5_000.0 to 5_000.2 at 50.2
    clocks.tick = 52.0  # carried forward: 5_001.8 to 5_002.0 at 52.0
    clock.sync(server_time=5_001.9, sent=51.5, received=52.0)  # 5_001.9 to 5_002.4 at 52.0
    assert abs(clock.now() - 5_001.95) < 0.001  # the middle of 5_001.9 to 5_002.0


def test_when_redis_clock_moves_the_clock_follows_it() -> None:
    """A sample that contradicts the earlier ones (another server, a stepped Redis host) wins."""
    clocks = Clocks()
    clock = clocks.clock()
    clock.sync(server_time=5_000.0, sent=50.0, received=50.0)
    clocks.tick = 51.0
    clock.sync(server_time=4_000.0, sent=51.0, received=51.0)
    assert clock.now() == 4_000.0
