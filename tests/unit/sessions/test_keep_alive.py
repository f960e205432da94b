"""The coherence keep-alive decision: only an unanswered PING loses a connection."""

from __future__ import annotations

from exporter.store.coherence import keep_alive_action

INTERVAL = 1.0


def test_a_quiet_connection_is_pinged_not_lost() -> None:
    assert keep_alive_action(now=10.0, heard=7.0, pinged=None, interval=INTERVAL) == "ping"


def test_a_recently_heard_connection_needs_nothing() -> None:
    assert keep_alive_action(now=10.0, heard=9.8, pinged=None, interval=INTERVAL) == "ok"


def test_an_answer_read_just_after_a_check_is_not_a_loss() -> None:
    """The regression seen under load: PING at t=0, PONG read at t=0.004; quiet ~2 s later must
    lead to another PING, never to "lost" (the old rule declared it lost without asking)."""
    heard, pinged = 0.004, 0.0  # answered
    assert keep_alive_action(now=0.5, heard=heard, pinged=pinged, interval=INTERVAL) == "ok"
    assert keep_alive_action(now=1.999, heard=heard, pinged=None, interval=INTERVAL) == "ping"


def test_an_unanswered_ping_waits_two_intervals_then_is_lost() -> None:
    assert keep_alive_action(now=11.0, heard=9.0, pinged=10.0, interval=INTERVAL) == "wait"
    assert keep_alive_action(now=11.999, heard=9.0, pinged=10.0, interval=INTERVAL) == "wait"
    assert keep_alive_action(now=12.0, heard=9.0, pinged=10.0, interval=INTERVAL) == "lost"
