"""Retry policy for upstream HTTP calls: bounded attempts, jittered backoff, bounded Retry-After.

Pure functions apart from the random source, which is injectable:

    >>> policy = RetryPolicy(max_retries=2, backoff_base=0.1, backoff_cap=1.0)
    >>> policy.backoff(0, random=lambda: 1.0)
    0.1
    >>> parse_retry_after("3")
    3.0
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_retries` retries after the first attempt; waits never exceed `max_retry_after`."""

    max_retries: int = 2
    backoff_base: float = 0.2
    backoff_cap: float = 2.0
    max_retry_after: float = 5.0

    def backoff(self, retry: int, random: Callable[[], float] = _random.random) -> float:
        """Seconds to wait before retry number `retry` (0-based): half fixed, half jitter, so
        replicas hitting the same failure spread out without ever retrying at once."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0**retry)
        return ceiling / 2 + random() * ceiling / 2

    def honours(self, retry_after: float | None) -> bool:
        """Whether a server-requested wait is short enough to wait for it instead of failing."""
        return retry_after is None or retry_after <= self.max_retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or HTTP date); None if absent/invalid."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN guard
