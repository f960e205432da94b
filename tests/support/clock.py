"""A clock the test sets by hand, for the pure state machines that take a `clock` callable."""

from __future__ import annotations


class ManualClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
