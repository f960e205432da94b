"""Stopping background tasks (`exporter.core.tasks`)."""

from __future__ import annotations

import asyncio

import pytest

from exporter.core import tasks
from exporter.core.tasks import cancel_and_wait


async def test_every_task_is_stopped_and_what_it_raised_is_swallowed() -> None:
    async def fails_when_cancelled() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("a loop that fails as it stops") from None

    loops = [asyncio.create_task(fails_when_cancelled()), asyncio.create_task(asyncio.sleep(60))]
    await asyncio.sleep(0)
    await cancel_and_wait(*loops, None)
    assert all(task.done() for task in loops)


async def test_a_caller_cancelled_while_it_waits_stays_cancelled() -> None:
    """Shutdown cancels a task wherever it is: one stopping others must not swallow it."""

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.2)

    inner = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.sleep(0.05)
    stopping.cancel()
    await asyncio.wait([stopping])
    assert stopping.cancelled()
    await asyncio.wait([inner])


async def test_a_task_that_swallowed_its_cancel_is_cancelled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As redis-py on Python 3.11 may (CPython gh-86296): the loop goes on to wait for ever."""
    monkeypatch.setattr(tasks, "CANCEL_REPEAT", 0.05)
    # Read from the module's logger itself: the suite's other tests configure logging.
    warnings: list[str] = []
    monkeypatch.setattr(
        tasks.log, "warning", lambda message, *args: warnings.append(message % args)
    )
    swallowed = asyncio.Event()

    async def swallows_one_cancel() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            swallowed.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(swallows_one_cancel())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_and_wait(task)
    assert swallowed.is_set() and task.cancelled()
    assert len(warnings) == 1 and "still running" in warnings[0]
