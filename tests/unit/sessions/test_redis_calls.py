"""How a timed-out Redis command is judged: an outage, a retry, or backpressure (our own loop
stalled). Redis's answers are scripted: this is the decision, the real timeouts are tested in
tests/integration/sessions/test_store_hung.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from exporter.core.errors import StoreBusy, StoreTimeout
from exporter.core.loop_lag import LoopLag
from exporter.store.redis_calls import PING_ATTEMPTS, RedisCalls
from tests.support.clock import ManualClock

TIMEOUT = 0.25


class ScriptedPings:
    """PINGs that answer or time out in turn; `stall` is how late our loop ran during each."""

    timeout = TIMEOUT

    def __init__(
        self, lag: LoopLag, clock: ManualClock, answers: list[bool], stall: float = 0.0
    ) -> None:
        self.lag, self.clock, self.answers, self.stall = lag, clock, answers, stall
        self.sent = 0

    async def ping(self) -> float:
        self.sent += 1
        await asyncio.sleep(0)
        self.clock.now += 1.0
        self.lag.record(self.stall)
        if not self.answers.pop(0):
            raise StoreTimeout("Redis did not answer in time")
        return 0.001


def calls_with(answers: list[bool], stall: float = 0.0) -> tuple[RedisCalls, ScriptedPings]:
    clock = ManualClock()
    lag = LoopLag(clock=clock)
    pings = ScriptedPings(lag, clock, answers, stall)
    return RedisCalls(pings, lag), pings


def command(outcomes: list[bool], lag: LoopLag, stall: float = 0.0) -> Callable[[], Awaitable[str]]:
    """A command that times out (False) or answers "ok" (True) in turn."""

    async def run() -> str:
        lag.record(stall)
        if not outcomes.pop(0):
            raise StoreTimeout("Redis did not answer in time")
        return "ok"

    return run


async def test_an_answer_is_returned_without_a_ping() -> None:
    calls, pings = calls_with([])
    assert await calls.call(command([True], calls.loop_lag)) == "ok"
    assert pings.sent == 0


async def test_a_timeout_redis_then_answers_to_is_retried_once() -> None:
    calls, pings = calls_with([True])
    assert await calls.call(command([False, True], calls.loop_lag)) == "ok"
    assert pings.sent == 1


async def test_a_timeout_with_an_unanswered_ping_is_an_outage() -> None:
    calls, _ = calls_with([False])
    with pytest.raises(StoreTimeout):
        await calls.call(command([False], calls.loop_lag))


async def test_a_second_timeout_while_our_loop_ran_on_time_is_an_outage() -> None:
    calls, _ = calls_with([True])
    with pytest.raises(StoreTimeout):
        await calls.call(command([False, False], calls.loop_lag))


async def test_a_second_timeout_while_our_loop_stalled_is_backpressure() -> None:
    calls, _ = calls_with([True])
    stalled = command([False, False], calls.loop_lag, stall=TIMEOUT)
    with pytest.raises(StoreBusy):
        await calls.call(stalled)


async def test_pings_that_time_out_under_stalls_every_time_are_backpressure() -> None:
    calls, pings = calls_with([False] * PING_ATTEMPTS, stall=TIMEOUT)
    with pytest.raises(StoreBusy):
        await calls.call(command([False], calls.loop_lag))
    assert pings.sent == PING_ATTEMPTS


async def test_concurrent_timeouts_share_one_ping() -> None:
    calls, pings = calls_with([True])
    results = await asyncio.gather(
        *(calls.call(command([False, True], calls.loop_lag)) for _ in range(5))
    )
    assert results == ["ok"] * 5 and pings.sent == 1
