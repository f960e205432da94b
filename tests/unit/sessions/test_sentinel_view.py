"""Which server the store takes for the Sentinel master, from the sentinels' answers."""

from __future__ import annotations

from exporter.store.sentinel_view import MasterView


def state(host: str, epoch: int) -> dict[str, str]:
    return {"ip": host, "port": "6379", "config-epoch": str(epoch)}


def test_after_an_announced_switch_only_the_new_master_or_a_newer_configuration_counts() -> None:
    view = MasterView()
    assert view.choose([state("old", 3), state("old", 3)]) == ("old", 6379)
    view.announced(("new", 6379))
    # The leader (epoch 4) too busy to answer in time: the others' answer is stale, not taken.
    assert view.choose([state("old", 3), state("old", 3)]) is None
    assert view.choose([state("old", 3), state("new", 4)]) == ("new", 6379)
    # A later failover, back to the old server, has a newer configuration still: taken.
    assert view.choose([state("new", 4), state("old", 5)]) == ("old", 6379)


def test_an_announcement_heard_after_the_new_configuration_was_seen_keeps_it() -> None:
    view = MasterView()
    assert view.choose([state("old", 3), state("new", 4)]) == ("new", 6379)
    view.announced(("new", 6379))
    assert view.choose([state("old", 3), state("new", 4)]) == ("new", 6379)
    assert view.choose([state("old", 3)]) is None


def test_the_current_master_is_the_last_decision_an_answer_or_an_announcement() -> None:
    view = MasterView()
    assert view.current is None
    view.choose([state("old", 3)])
    assert view.current == ("old", 6379)
    view.announced(("new", 6379))  # heard while a connection to "old" was being made
    assert view.current == ("new", 6379)


def test_the_leaders_answer_from_just_before_the_switch_is_not_taken() -> None:
    """The leader takes the new epoch when the replica takes over, and the new address only
    when it announces the switch: an answer it sent in between names the old master with the
    new epoch, and may be read after the announcement (seed 11 round 8 of the torture run)."""
    view = MasterView()
    assert view.choose([state("old", 3)]) == ("old", 6379)
    view.announced(("new", 6379))
    assert view.choose([state("old", 4), state("old", 3)]) is None  # nobody names "new" yet
    assert view.choose([state("old", 4), state("new", 4)]) == ("new", 6379)
    assert view.choose([state("old", 4)]) is None  # "new"'s epoch is known now: 4 is not newer
    assert view.choose([state("old", 5)]) == ("old", 6379)  # a later failover back
