"""The reserve keeps what memory stopped serving, bounded like the tier, for a re-seed."""

from __future__ import annotations

from exporter.sessions.reserve import Reserve
from exporter.sessions.store import StoredValue


def test_bounded_by_entries_and_bytes_oldest_first_and_expired_forgotten() -> None:
    reserve = Reserve(max_entries=3, max_bytes=10)
    reserve.keep("a", StoredValue(b"1234", 1, 100.0))
    reserve.keep("b", StoredValue(b"1234", 1, 100.0))
    reserve.keep("c", StoredValue(b"1234", 1, 10.0))  # 12 bytes: "a" goes
    assert sorted(reserve.live(now=5.0)) == ["b", "c"] and reserve.bytes == 8
    reserve.keep("b", StoredValue(b"12", 2, 100.0))  # a newer copy replaces, counted once
    assert reserve.bytes == 6
    assert sorted(reserve.live(now=50.0)) == ["b"]  # "c" expired at 10
    reserve.drop("b")
    assert len(reserve) == 0 and reserve.bytes == 0
