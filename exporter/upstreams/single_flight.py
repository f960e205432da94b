"""Single flight: concurrent calls for the same key share one execution.

The shared call runs in its own task, so a caller that gives up (cancelled request) neither
cancels it for the others nor leaves a half-written cache entry behind.

    >>> import asyncio
    >>> calls = 0
    >>> async def fetch() -> int:
    ...     global calls
    ...     calls += 1
    ...     await asyncio.sleep(0.01)
    ...     return 42
    >>> async def main() -> list[int]:
    ...     flight = SingleFlight()
    ...     return await asyncio.gather(*(flight.run("k", fetch) for _ in range(10)))
    >>> asyncio.run(main()), calls
    ([42, 42, 42, 42, 42, 42, 42, 42, 42, 42], 1)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    """Collapses concurrent calls per key; `shared` counts callers that joined a running call."""

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Task[Any]] = {}
        self.shared = 0

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> T:
        """The result of `call()`, or of the identical call already in flight."""
        task = self._flights.get(key)
        if task is None:
            task = asyncio.ensure_future(call())
            self._flights[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        else:
            self.shared += 1
        result: T = await asyncio.shield(task)
        return result

    def _forget(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an abandoned failure is never logged as unhandled

    async def cancel_all(self) -> None:
        """Cancel every call in flight (shutdown) and wait for them to finish."""
        tasks = list(self._flights.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
