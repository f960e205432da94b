"""Connection caps: per client address, and in total, where the richest address makes room."""

from __future__ import annotations

from exporter.web.connection_guard import Admission, ConnectionGuard, auto_max_connections


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


def test_a_new_address_takes_room_from_the_richest_longest_waiting_first() -> None:
    guard = ConnectionGuard[str](max_connections=4, max_per_client=0)
    for name in ("flood1", "flood2", "flood3"):
        guard.admit(name, "10.0.0.9")
    guard.admit("other", "10.0.0.8")
    guard.busy("flood1")  # answering a request: never closed
    assert guard.admit("new1", "10.0.0.1") == Admission(True, "flood2", "total_limit")
    assert guard.admit("new2", "10.0.0.2") == Admission(True, "flood3", "total_limit")
    # Each address holds one now: a fourth address still gets in, from any idle one...
    assert guard.admit("new3", "10.0.0.3").evict in {"other", "new1", "new2"}
    # ...but an address that holds as many as any other gets no more.
    assert guard.admit("new4", "10.0.0.3") == Admission(False, reason="total_limit")


def test_a_flooding_address_cannot_churn_through_its_own_connections() -> None:
    guard = ConnectionGuard[str](max_connections=4, max_per_client=0)
    for n in range(2):
        guard.admit(f"a{n}", "10.0.0.1")
        guard.admit(f"b{n}", "10.0.0.2")
    assert guard.admit("a2", "10.0.0.1") == Admission(False, reason="total_limit")
    assert guard.admit("c0", "10.0.0.3").evict in {"a0", "b0"}  # a newcomer still gets in
    assert guard.open == 4


def test_behind_a_proxy_the_one_address_makes_room_from_its_idle_connections() -> None:
    guard = ConnectionGuard[str](max_connections=2, max_per_client=0)
    guard.admit("keepalive", "10.0.0.1")
    guard.admit("request", "10.0.0.1")
    guard.busy("request")
    assert guard.admit("new", "10.0.0.1") == Admission(True, "keepalive", "total_limit")
    guard.busy("new")
    assert guard.admit("more", "10.0.0.1") == Admission(False, reason="total_limit")
    guard.waiting("request")  # answered: idle again, it can make room
    assert guard.admit("more", "10.0.0.1").evict == "request"


def test_closing_twice_counts_once_and_frees_the_address() -> None:
    guard = ConnectionGuard[str](max_connections=2, max_per_client=1)
    guard.admit("a", "10.0.0.1")
    guard.admit("b", "10.0.0.2")
    guard.closed("a")
    guard.closed("a")  # evicted, then its connection_lost
    assert guard.open == 1 and guard.admit("a2", "10.0.0.1").admitted
    assert guard.admit("b2", "10.0.0.2") == Admission(False, reason="client_limit")


def test_the_automatic_total_leaves_descriptors_for_the_rest() -> None:
    assert auto_max_connections(1024) == 768
    assert auto_max_connections(100) == 75 and auto_max_connections(10) == 64
    assert auto_max_connections(1 << 20) == 16384
