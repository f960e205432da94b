"""The Figma cache's decision, with the clock passed in: fresh, stale (serve and revalidate),
hold (serve without asking while the quota is short), wait (revalidate first)."""

from __future__ import annotations

import pytest

from exporter.upstreams.freshness import FreshnessPolicy, VersionRecord, decide

POLICY = FreshnessPolicy(ttl=60, stale_seconds=30)
VERIFIED = VersionRecord("7", verified_at=1_000.0)


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0.0, "fresh"),
        (59.999, "fresh"),
        (60.0, "stale"),  # the TTL has passed: serve, revalidate in the background
        (89.999, "stale"),
        (90.0, "wait"),  # the stale bound has passed: the reader waits
        (10_000.0, "wait"),
    ],
)
def test_the_age_of_the_verification_decides(age: float, expected: str) -> None:
    assert decide(VERIFIED, 1_000.0 + age, POLICY, quota_short=False) == expected


@pytest.mark.parametrize(("age", "expected"), [(10.0, "fresh"), (70.0, "hold"), (90.0, "wait")])
def test_a_short_quota_holds_within_the_bound_only(age: float, expected: str) -> None:
    assert decide(VERIFIED, 1_000.0 + age, POLICY, quota_short=True) == expected


def test_an_unknown_file_waits() -> None:
    assert decide(None, 1_000.0, POLICY, quota_short=False) == "wait"
    assert decide(None, 1_000.0, POLICY, quota_short=True) == "wait"


def test_no_stale_window_means_waiting_as_soon_as_the_ttl_passes() -> None:
    policy = FreshnessPolicy(ttl=60, stale_seconds=0)
    assert decide(VERIFIED, 1_059.0, policy, quota_short=False) == "fresh"
    assert decide(VERIFIED, 1_060.0, policy, quota_short=True) == "wait"
    assert policy.bound == 60


def test_without_revalidation_an_expired_copy_is_never_served() -> None:
    policy = FreshnessPolicy(ttl=60, stale_seconds=30, revalidate=False)
    assert decide(VERIFIED, 1_070.0, policy, quota_short=True) == "wait"
    assert policy.bound == 60


def test_a_record_from_a_clock_ahead_counts_as_just_verified() -> None:
    ahead = VersionRecord("7", verified_at=2_000.0)
    assert ahead.age(1_000.0) == 0.0
    assert decide(ahead, 1_000.0, POLICY, quota_short=False) == "fresh"


def test_the_bound_is_the_worst_staleness() -> None:
    assert POLICY.bound == 90
