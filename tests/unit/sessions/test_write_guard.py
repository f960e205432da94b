"""The write guard, driven directly: which calls in flight may fill memory, and echoes."""

from __future__ import annotations

from exporter.store.write_guard import MAX_ECHOES, WriteGuard


def test_a_call_is_clean_unless_its_key_or_the_tier_was_invalidated_meanwhile() -> None:
    guard = WriteGuard()
    first = guard.watch("s:{a}")
    assert guard.unwatch("s:{a}", first) is True
    second = guard.watch("s:{a}")
    guard.invalidated("s:{b}")  # another key: no effect
    guard.invalidated("s:{a}")
    assert guard.unwatch("s:{a}", second) is False
    third = guard.watch("s:{a}")
    guard.invalidate_all()
    assert guard.unwatch("s:{a}", third) is False


def test_overlapping_calls_share_the_key_until_the_last_one_ends() -> None:
    guard = WriteGuard()
    early = guard.watch("s:{a}")
    guard.invalidated("s:{a}")
    late = guard.watch("s:{a}")  # started after the invalidation: clean
    assert guard.unwatch("s:{a}", late) is True
    assert guard.unwatch("s:{a}", early) is False
    assert guard.unwatch("s:{a}", guard.watch("s:{a}")) is True  # the entry was reset


def test_echoes_are_expected_only_for_tracked_keys_while_coherent() -> None:
    assert WriteGuard().expect_echo("s:{a}", coherent=True) is False  # nothing tracked
    guard = WriteGuard(tracked_prefixes=("s:",))
    assert guard.expect_echo("figma:x", coherent=True) is False
    assert guard.expect_echo("s:{a}", coherent=False) is False
    assert guard.expect_echo("s:{a}", coherent=True) and guard.expect_echo("s:{a}", coherent=True)
    guard.echo_arrived("s:{a}")
    assert guard.is_echo("s:{a}")  # one more expected
    guard.echo_arrived("s:{a}")
    assert not guard.is_echo("s:{a}")
    guard.expect_echo("s:{b}", coherent=True)
    guard.forget_echoes()
    assert not guard.is_echo("s:{b}")


def test_expected_echoes_stay_bounded() -> None:
    guard = WriteGuard(tracked_prefixes=("s:",))
    for n in range(MAX_ECHOES + 5):
        guard.expect_echo(f"s:{{{n}}}", coherent=True)
    assert not guard.is_echo("s:{0}") and guard.is_echo(f"s:{{{MAX_ECHOES + 4}}}")


def test_only_a_key_this_replica_holds_can_echo() -> None:
    """Redis tracks a key only for the connections that read (or wrote) it: a write of a key
    this replica does not hold (a new session) is reported to no one of ours."""
    guard = WriteGuard(tracked_prefixes=("s:",))
    assert guard.expect_echo("s:{a}", coherent=True, held=False) is False
    assert not guard.is_echo("s:{a}")
    assert guard.expect_echo("s:{a}", coherent=True, held=True) and guard.is_echo("s:{a}")


def test_no_read_overlapping_a_delete_of_its_key_is_clean() -> None:
    guard = WriteGuard()
    before = guard.watch("s:{a}")  # began before the delete
    with guard.deleting("s:{a}"):
        during = guard.watch("s:{a}")  # began and ends while the delete is under way
        assert guard.unwatch("s:{a}", during) is False
        across = guard.watch("s:{a}")  # began during it, ends after
    assert guard.unwatch("s:{a}", across) is False
    assert guard.unwatch("s:{a}", before) is False
    assert guard.unwatch("s:{a}", guard.watch("s:{a}")) is True  # after it: clean again
