"""Stopping background tasks: the one way every component ends its loops."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel every task given (None and finished ones are skipped) and wait until all have ended.

    What a task raised while ending is swallowed: a stopping component has nobody to report to,
    and one failed loop must not keep the others from being stopped.
    """
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    if not running:
        return
    # asyncio.wait, not `await task` under a suppressed CancelledError: that would swallow a
    # cancellation of the caller arriving meanwhile (shutdown would then go on waiting for it).
    await asyncio.wait(running)
    for task in running:
        if not task.cancelled():
            task.exception()  # retrieved: nothing logs "exception was never retrieved"


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a Redis call swallowed.

    redis-py's connections wrap socket writes in `asyncio.wait_for`, which on Python 3.11 loses a
    cancel that arrives as the write completes (CPython gh-86296): the task goes on with
    `cancelling()` set. Background loops call this after each Redis call so they still stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
