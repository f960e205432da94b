"""Circuit breaker state machine on a fake clock (pure logic, no I/O)."""

from __future__ import annotations

from exporter.store.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from tests.support.clock import ManualClock


def test_one_failure_opens_and_calls_fail_fast_until_the_interval() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(0.5, clock=clock)
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == OPEN and breaker.trips == 1
    assert not breaker.allow()
    clock.now += 0.49
    assert not breaker.allow()
    assert breaker.seconds_until_probe() > 0


def test_half_open_lets_one_probe_through() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(0.5, clock=clock)
    breaker.failure()
    clock.now += 0.5
    assert breaker.allow()
    assert breaker.state == HALF_OPEN
    assert not breaker.allow()  # only one probe at a time


def test_probe_success_closes_probe_failure_reopens() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(0.5, clock=clock)
    breaker.failure()
    clock.now += 0.5
    breaker.allow()
    breaker.failure()
    assert breaker.state == OPEN and breaker.trips == 1
    clock.now += 0.5
    assert breaker.allow()
    breaker.success()
    assert breaker.state == CLOSED and breaker.allow()


def test_late_failures_do_not_postpone_the_next_probe() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(0.5, clock=clock)
    breaker.failure()
    clock.now += 0.4
    breaker.failure()  # a call that started before the trip fails late
    clock.now += 0.1
    assert breaker.allow()


def test_threshold_above_one_tolerates_isolated_failures() -> None:
    breaker = CircuitBreaker(0.5, failure_threshold=3, clock=ManualClock())
    breaker.failure()
    breaker.failure()
    assert breaker.state == CLOSED
    breaker.failure()
    assert breaker.state == OPEN
