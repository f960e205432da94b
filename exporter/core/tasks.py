"""Stopping background tasks: the one way every component ends its loops."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

# Long enough for any task's own clean-up (a last Redis call within its timeout) to finish.
CANCEL_REPEAT = 5.0


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel every task given (None and finished ones are skipped) and wait until all have ended.

    What a task raised while ending is swallowed: a stopping component has nobody to report to,
    and one failed loop must not keep the others from being stopped. A task still running
    CANCEL_REPEAT seconds after its cancel is cancelled again: a Redis call may have swallowed
    the first (see `raise_if_cancelled`), and the task would otherwise wait for ever.
    """
    pending = {task for task in tasks if task is not None and not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        # asyncio.wait, not `await task` under a suppressed CancelledError: that would swallow a
        # cancellation of the caller arriving meanwhile (shutdown would then go on waiting).
        _, pending = await asyncio.wait(pending, timeout=CANCEL_REPEAT)
        for task in pending:
            log.warning("task %s still running %.0f s after its cancel", task, CANCEL_REPEAT)
    for ended in tasks:
        if ended is not None and not ended.cancelled():
            ended.exception()  # retrieved: nothing logs "exception was never retrieved"


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a Redis call swallowed.

    redis-py's connections wrap socket writes in `asyncio.wait_for`, which on Python 3.11 loses a
    cancel that arrives as the write completes (CPython gh-86296): the task goes on with
    `cancelling()` set. Background loops call this after each Redis call so they still stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
