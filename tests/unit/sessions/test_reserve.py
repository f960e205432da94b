"""The reserve keeps what memory stopped serving and the deletes made, for a re-seed."""

from __future__ import annotations

from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.reserve import Reserve


def item(key: str, payload: bytes | None, expires_at: float = 100.0) -> ReplayItem:
    value = StoredValue(payload, 1, expires_at) if payload is not None else None
    return ReplayItem(key, 1, expires_at, value)


def test_bounded_by_entries_and_bytes_oldest_first_and_expired_forgotten() -> None:
    reserve = Reserve(max_entries=3, max_bytes=12)
    reserve.keep(item("a", b"1234"))  # 5 bytes with its key
    reserve.keep(item("b", b"1234"))
    reserve.keep(item("c", b"1234", expires_at=10.0))  # 15 bytes: "a" goes
    assert sorted(reserve.live(now=5.0)) == ["b", "c"] and reserve.bytes == 10
    reserve.keep(item("b", None))  # a delete replaces the value, counted once
    assert reserve.bytes == 6 and reserve.live(now=5.0)["b"].value is None
    assert sorted(reserve.live(now=50.0)) == ["b"]  # "c" expired at 10
    reserve.drop("b")
    assert len(reserve) == 0 and reserve.bytes == 0


def test_a_change_elsewhere_drops_a_value_never_a_delete() -> None:
    reserve = Reserve(max_entries=10, max_bytes=1000)
    reserve.keep(item("value", b"1"))
    reserve.keep(item("deleted", None))
    reserve.changed_elsewhere("value")
    reserve.changed_elsewhere("deleted")  # maybe this delete's own echo: it stays
    assert sorted(reserve.live(now=5.0)) == ["deleted"]
