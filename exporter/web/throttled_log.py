"""A log line for a condition that may repeat thousands of times a second (slow clients, refused
`Host` names): the first occurrence at once, then at most one line per interval, saying how many
more there were.

    >>> import logging
    >>> clock = iter([0.0, 1.0, 2.0, 61.0]).__next__
    >>> warn = ThrottledLog(logging.getLogger("demo"), interval=60.0, clock=clock)
    >>> [warn.log("slow client from %s", "10.0.0.1") for _ in range(4)]
    [True, False, False, True]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ThrottledLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        level: int = logging.WARNING,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.level = level
        self.interval = interval
        self._clock = clock
        self._last: float | None = None
        self._held_back = 0

    def log(self, message: str, *args: object) -> bool:
        """Log `message % args` unless a line went out less than `interval` ago; True if logged."""
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            self._held_back += 1
            return False
        if self._held_back:
            message += f" ({self._held_back} more like it since the previous line)"
        self.logger.log(self.level, message, *args)
        self._last, self._held_back = now, 0
        return True
