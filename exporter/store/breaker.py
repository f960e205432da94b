"""A circuit breaker: pure state, the clock passed in, no I/O.

Closed → open after `failure_threshold` consecutive failures (one by default: a dead or hung Redis
then costs one short timeout). While open every call fails fast; after `retry_interval` one caller
gets a half-open probe, whose outcome closes or re-opens the circuit.

    >>> breaker = CircuitBreaker(retry_interval=0.5, clock=lambda: 10.0)
    >>> breaker.failure(); breaker.state
    'open'
    >>> breaker.allow()
    False
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        retry_interval: float,
        *,
        failure_threshold: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry_interval = retry_interval
        self.failure_threshold = failure_threshold
        self._clock = clock
        self.state = CLOSED
        self.failures = 0
        self.opened_at: float | None = None
        self.trips = 0

    @property
    def closed(self) -> bool:
        return self.state == CLOSED

    def allow(self) -> bool:
        """Whether a call may go through now; in open state, lets one probe through per interval."""
        if self.state == CLOSED:
            return True
        if (
            self.state == OPEN
            and self.opened_at is not None
            and self._clock() - self.opened_at >= self.retry_interval
        ):
            self.state = HALF_OPEN
            return True
        return False

    def success(self) -> None:
        self.state = CLOSED
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        """Count a failure; return to (or enter) open state when the threshold is reached."""
        self.failures += 1
        if self.state == OPEN:
            return  # late failures of calls made before the trip must not postpone the next probe
        if self.state == HALF_OPEN or self.failures >= self.failure_threshold:
            if self.state == CLOSED:
                self.trips += 1
            self.state = OPEN
            self.opened_at = self._clock()

    def seconds_until_probe(self) -> float:
        """How long until the next probe is allowed (0 when closed or due)."""
        if self.state != OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.retry_interval - (self._clock() - self.opened_at))

    def retry_after(self) -> float:
        """What a 503 tells the client to wait, in seconds: until the next probe, at least 1."""
        return max(1.0, self.seconds_until_probe())
