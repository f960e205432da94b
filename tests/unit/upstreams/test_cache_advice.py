"""The cache-stats recommendations, computed from the Figma cache's own numbers."""

from __future__ import annotations

from exporter.upstreams.cache_advice import MIB, Observations, advise


def codes(seen: Observations) -> list[str]:
    return [advice.code for advice in advise(seen)]


def test_nothing_to_say_before_anything_happened() -> None:
    assert advise(Observations(ttl=300, stale_seconds=60)) == []


def test_the_savings_are_reported_with_their_numbers() -> None:
    seen = Observations(
        ttl=300, stale_seconds=60, unchanged=3, changed=1, downloads_avoided=5, bytes_saved=2 * MIB
    )
    [savings] = advise(seen)
    assert savings.code == "revalidation_savings" and savings.setting is None
    assert "75% unchanged" in savings.message and "5 full downloads (2.0 MiB)" in savings.message
    assert savings.observed["unchanged_share"] == 0.75


def test_files_that_rarely_change_suggest_a_longer_ttl() -> None:
    [_, ttl] = advise(Observations(ttl=300, stale_seconds=60, unchanged=57, changed=3))
    assert (ttl.code, ttl.setting, ttl.current, ttl.suggested) == (
        "raise_ttl",
        "--figma-cache-ttl",
        300,
        600,
    )
    assert "95% of expired files were unchanged" in ttl.message
    assert "up to 660 s out of date" in ttl.message


def test_files_that_often_change_suggest_a_shorter_ttl() -> None:
    [_, ttl] = advise(Observations(ttl=300, stale_seconds=60, unchanged=5, changed=20))
    assert (ttl.code, ttl.suggested) == ("lower_ttl", 150)


def test_a_small_sample_suggests_no_setting() -> None:
    assert codes(Observations(ttl=300, stale_seconds=60, unchanged=19)) == ["revalidation_savings"]


def test_readers_that_waited_suggest_a_stale_window() -> None:
    advice = advise(Observations(ttl=300, stale_seconds=0, waited=40))
    assert [(a.code, a.setting, a.current, a.suggested) for a in advice] == [
        ("raise_stale_seconds", "--figma-cache-stale-seconds", 0, 300)
    ]


def test_copies_lost_to_the_byte_budget_suggest_a_larger_one() -> None:
    seen = Observations(
        ttl=300,
        stale_seconds=60,
        evicted_early=12,
        evicted_early_bytes=5 * MIB + 1,
        budget_bytes=64 * MIB,
    )
    [budget] = advise(seen)
    assert (budget.code, budget.setting, budget.current, budget.suggested) == (
        "raise_cache_bytes",
        "--figma-cache-max-bytes",
        64 * MIB,
        70 * MIB,
    )
    assert budget.observed == {"evicted_early": 12, "evicted_early_bytes": 5 * MIB + 1}


def test_a_refused_metadata_call_asks_for_the_scope_not_about_failures() -> None:
    seen = Observations(ttl=300, stale_seconds=60, failed=3, revalidation_refused=True)
    assert codes(seen) == ["grant_metadata_scope"]


def test_failures_and_quota_holds_are_reported() -> None:
    seen = Observations(
        ttl=300,
        stale_seconds=60,
        unchanged=1,
        failed=2,
        last_failure="Figma API meta failed (500)",
        stale_quota=7,
        quota_short="Figma Tier 1 answered 429 3 s ago",
    )
    advice = {a.code: a for a in advise(seen)}
    assert "2 of 3 revalidations failed" in advice["revalidation_failures"].message
    assert "(last: Figma API meta failed (500))" in advice["revalidation_failures"].message
    assert advice["quota_hold"].message.endswith("now: Figma Tier 1 answered 429 3 s ago")
    assert advice["quota_hold"].observed == {"stale_quota": 7}
