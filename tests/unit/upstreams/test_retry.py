"""Retry policy: jittered backoff within bounds, Retry-After parsing and its bound."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from exporter.upstreams.retry import RetryPolicy, parse_retry_after


@pytest.mark.parametrize(
    "retry, low, high", [(0, 0.1, 0.2), (1, 0.2, 0.4), (2, 0.4, 0.8), (6, 0.5, 1.0)]
)
def test_backoff_doubles_with_jitter_up_to_the_cap(retry: int, low: float, high: float) -> None:
    policy = RetryPolicy(backoff_base=0.2, backoff_cap=1.0)
    assert policy.backoff(retry, random=lambda: 0.0) == pytest.approx(low)
    assert policy.backoff(retry, random=lambda: 1.0) == pytest.approx(high)


def test_backoff_jitter_spreads_waits() -> None:
    policy = RetryPolicy(backoff_base=0.2, backoff_cap=1.0)
    waits = {round(policy.backoff(1), 6) for _ in range(50)}
    assert len(waits) > 10
    assert all(0.2 <= wait <= 0.4 for wait in waits)


@pytest.mark.parametrize(
    "header, expected",
    [
        ("3", 3.0),
        ("0.25", 0.25),
        (" 7 ", 7.0),
        ("-5", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
    ],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_retry_after_bound() -> None:
    policy = RetryPolicy(max_retry_after=5)
    assert policy.honours(None) and policy.honours(5.0)
    assert not policy.honours(5.01)
    assert not policy.honours(parse_retry_after("inf"))
