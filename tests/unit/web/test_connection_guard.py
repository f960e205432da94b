"""Connection caps: per client address and in total, the longest-waiting one making room."""

from __future__ import annotations

from exporter.web.connection_guard import (
    Admission,
    ConnectionGuard,
    auto_max_connections,
)


def test_the_per_client_cap_refuses_and_frees_on_close() -> None:
    guard = ConnectionGuard[str](max_connections=100, max_per_client=2)
    assert guard.admit("a1", "10.0.0.1").admitted and guard.admit("a2", "10.0.0.1").admitted
    assert guard.admit("a3", "10.0.0.1") == Admission(False, reason="client_limit")
    assert guard.admit("b1", "10.0.0.2").admitted
    guard.closed("a1")
    assert guard.admit("a4", "10.0.0.1").admitted
    assert guard.open == 3


def test_no_per_client_cap_when_zero() -> None:
    guard = ConnectionGuard[int](max_connections=1000, max_per_client=0)
    assert all(guard.admit(n, "10.0.0.1").admitted for n in range(500))


def test_at_the_total_cap_the_longest_waiting_makes_room() -> None:
    guard = ConnectionGuard[str](max_connections=3, max_per_client=0)
    for name in ("slow", "busy", "idle"):
        guard.admit(name, "10.0.0.9")
    guard.busy("busy")  # answering a request: never evicted
    assert guard.admit("new1", "10.0.0.1") == Admission(True, "slow", "total_limit")
    assert guard.admit("new2", "10.0.0.1") == Admission(True, "idle", "total_limit")
    guard.waiting("busy")  # answered: waits again, behind new1 and new2
    assert guard.admit("new3", "10.0.0.1").evict == "new1"
    assert guard.open == 3


def test_when_every_connection_is_busy_a_new_one_is_refused() -> None:
    guard = ConnectionGuard[str](max_connections=2, max_per_client=0)
    for name in ("a", "b"):
        guard.admit(name, "10.0.0.1")
        guard.busy(name)
    assert guard.admit("c", "10.0.0.2") == Admission(False, reason="total_limit")
    guard.closed("a")
    guard.closed("a")  # twice (evicted, then its connection_lost): counted once
    assert guard.admit("c", "10.0.0.2").admitted and guard.open == 2


def test_an_evicted_connection_frees_its_address() -> None:
    guard = ConnectionGuard[str](max_connections=1, max_per_client=1)
    guard.admit("old", "10.0.0.1")
    assert guard.admit("new", "10.0.0.2").evict == "old"
    assert guard.admit("again", "10.0.0.1").admitted  # 10.0.0.1 holds nothing now


def test_the_automatic_total_leaves_descriptors_for_the_rest() -> None:
    assert auto_max_connections(1024) == 768
    assert auto_max_connections(100) == 75 and auto_max_connections(10) == 64
    assert auto_max_connections(1 << 20) == 16384
