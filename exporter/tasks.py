"""Stopping background tasks: the one way every component ends its loops."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel every task given (None and finished ones are skipped) and wait until all have ended.

    What a task raised while ending is swallowed: a stopping component has nobody to report to,
    and one failed loop must not keep the others from being stopped.
    """
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
