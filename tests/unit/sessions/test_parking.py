"""What one check of a parked own write decides (`parking.judge`, pure). The checks against a
real Redis are in tests/integration/sessions/test_store_tiers.py and the replicas' races."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.store.contract import StoredValue
from exporter.store.parking import Outcome, judge

OURS = StoredValue(b"ours", version=5, expires_at=60.0)
OLDER = StoredValue(b"older", version=4, expires_at=60.0)
NEWER = StoredValue(b"newer", version=6, expires_at=60.0)
CHECKED = dict(
    left=3,
    read=True,
    clean=True,
    same_epoch=True,
    fallback_active=False,
    journalled=False,
    bypass=False,
)


def decide(current: StoredValue | None = OURS, **changes: Any) -> Outcome:
    return judge(OURS, current, **{**CHECKED, **changes})


def test_ours_in_redis_or_awaiting_replay_is_served_again() -> None:
    assert decide(OURS) is Outcome.SERVE
    assert decide(None, journalled=True) is Outcome.SERVE


def test_a_newer_write_elsewhere_is_taken_unless_memory_is_bypassed() -> None:
    assert decide(NEWER) is Outcome.TAKE_NEWER
    assert decide(NEWER, bypass=True) is Outcome.LOST


@pytest.mark.parametrize("current", [None, OLDER], ids=["missing", "older"])
def test_redis_without_ours_keeps_it_for_a_reseed(current: StoredValue | None) -> None:
    assert decide(current) is Outcome.LOST


def test_changed_again_during_the_check_looks_again_then_drops() -> None:
    assert decide(clean=False) is Outcome.LOOK_AGAIN
    assert decide(clean=False, left=1) is Outcome.DROP


def test_an_unreadable_redis_looks_again_then_lets_reads_go_there() -> None:
    assert decide(None, read=False) is Outcome.LOOK_AGAIN
    assert decide(None, read=False, left=1) is Outcome.UNHOLD


def test_during_a_fallback_our_write_is_what_is_served() -> None:
    assert decide(None, read=False, fallback_active=True) is Outcome.FORGET


def test_a_cleared_tier_or_changed_coherence_ends_the_check() -> None:
    assert decide(NEWER, same_epoch=False) is Outcome.FORGET
