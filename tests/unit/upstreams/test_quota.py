"""Figma's per-minute rate limits as this replica spent them, with the clock passed in."""

from __future__ import annotations

from exporter.upstreams.quota import FIGMA_TIER_BUDGETS, TierQuota


def test_the_budgets_are_figmas_lowest_documented_limits() -> None:
    assert FIGMA_TIER_BUDGETS == {1: 10, 2: 25, 3: 50}


def test_a_tier_runs_short_at_eighty_percent_of_its_budget_in_a_minute() -> None:
    quota = TierQuota({1: 10})
    for second in range(7):
        quota.spend(1, now=float(second))
    assert quota.shortage(1, now=7.0) is None
    quota.spend(1, now=7.0)
    shortage = quota.shortage(1, now=7.5)
    assert shortage is not None and shortage.reason == "budget"
    assert (shortage.spent, shortage.budget) == (8, 10)
    assert "8 of a budget of 10" in shortage.describe()


def test_calls_older_than_a_minute_no_longer_count() -> None:
    quota = TierQuota({1: 10})
    for second in range(8):
        quota.spend(1, now=float(second))
    assert quota.shortage(1, now=60.5) is None  # the calls at 0 s are out of the window
    assert quota.spent(1, now=60.5) == 7
    assert quota.spent(1, now=200.0) == 0


def test_a_429_makes_the_tier_short_for_a_minute() -> None:
    quota = TierQuota({1: 10, 2: 25})
    quota.note_rate_limited(2, now=100.0)
    shortage = quota.shortage(2, now=159.0)
    assert shortage is not None and shortage.reason == "rate_limited"
    assert shortage.describe() == "Figma Tier 2 answered 429 59 s ago"
    assert quota.shortage(2, now=160.0) is None
    assert quota.shortage(1, now=120.0) is None  # tiers are counted apart


def test_a_lockout_longer_than_a_minute_lasts_until_it_ends() -> None:
    quota = TierQuota({1: 10})
    quota.note_rate_limited(1, now=100.0, until=400.0)
    assert quota.shortage(1, now=399.0) is not None
    assert quota.shortage(1, now=400.0) is None


def test_a_tier_without_a_budget_is_short_only_after_a_429() -> None:
    quota = TierQuota({})
    for second in range(100):
        quota.spend(5, now=float(second) / 10)
    assert quota.shortage(5, now=10.0) is None
