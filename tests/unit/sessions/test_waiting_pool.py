"""The pool's waiting line: a release wakes exactly one waiting caller, and a wake-up that reaches
a caller who is giving up (deadline or cancel) passes to the next one instead of being lost."""

from __future__ import annotations

import asyncio

from exporter.store.redis_client import WaitingConnectionPool


async def test_a_wake_up_meant_for_a_caller_giving_up_goes_to_the_next_one() -> None:
    pool = WaitingConnectionPool(max_connections=1, timeout=1.0)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    pool._waiters.extend([first, second])
    pool._wake_one()  # a release
    assert first.done() and not second.done()
    pool._stop_waiting(first)  # its deadline fired in the same loop cycle: not served
    assert second.done() and not pool._waiters


async def test_a_caller_giving_up_unwoken_leaves_the_line() -> None:
    pool = WaitingConnectionPool(max_connections=1, timeout=1.0)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    pool._waiters.extend([first, second])
    first.cancel()
    pool._stop_waiting(first)
    assert list(pool._waiters) == [second] and not second.done()
    pool._wake_one()
    assert second.done()
