"""Stopping background tasks (`exporter.core.tasks`)."""

from __future__ import annotations

import asyncio

from exporter.core.tasks import cancel_and_wait


async def test_every_task_is_stopped_and_what_it_raised_is_swallowed() -> None:
    async def fails_when_cancelled() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("a loop that fails as it stops") from None

    tasks = [asyncio.create_task(fails_when_cancelled()), asyncio.create_task(asyncio.sleep(60))]
    await asyncio.sleep(0)
    await cancel_and_wait(*tasks, None)
    assert all(task.done() for task in tasks)


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
