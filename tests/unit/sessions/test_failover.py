"""The outage state machine, driven directly (no Redis): every transition the store relies on."""

from __future__ import annotations

from exporter.store.failover import Failover


class Clocks:
    def __init__(self) -> None:
        self.wall = 1_000_000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds


def machine() -> tuple[Failover, Clocks]:
    clocks = Clocks()
    return Failover(lambda: clocks.wall), clocks


def test_one_outage_is_one_failover_however_many_calls_fail() -> None:
    state, clocks = machine()
    assert state.failed() is True
    assert (state.mode, state.fallback_since) == ("fallback", clocks.wall)
    clocks.advance(3)
    assert [state.failed() for _ in range(5)] == [False] * 5  # stale sockets, late notices
    assert (state.failovers, state.mode) == (1, "fallback")
    assert state.failed_back() == 3.0
    assert (state.mode, state.fallback_since) == ("redis", None)
    assert state.failed() is True and state.failovers == 2  # the next outage counts


def test_the_fallback_remembers_what_began_it_until_it_ends() -> None:
    state, _ = machine()
    state.failed("Redis did not answer in time")
    state.failed("Redis unavailable (ConnectionError)")  # the same outage: the cause stays
    assert state.fallback_cause == "Redis did not answer in time"
    state.failed_back()
    assert state.fallback_cause == ""


def test_refusing_writes_is_its_own_state_beside_the_fallback() -> None:
    state, clocks = machine()
    assert state.refused("readonly") is True
    assert state.refused("readonly") is False  # no news: no second event
    since = state.writes_refused_since
    clocks.advance(4)
    assert state.refused("oom") is True  # another reason is news, the start stays
    assert (state.mode, state.writes_refused_since) == ("refusing", since)
    state.failed()
    assert state.mode == "fallback" and state.writes_refused == "oom"
    state.failed_back()
    assert state.mode == "refusing"
    assert state.accepted() == ("oom", 4.0)
    assert (state.mode, state.accepted()) == ("redis", None)
