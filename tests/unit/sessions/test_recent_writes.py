"""What a master switch re-sends: the latest write per key, acknowledged within the window."""

from __future__ import annotations

from exporter.store.contract import ReplayItem
from exporter.store.recent_writes import RecentWrites


def test_the_latest_write_per_key_within_the_window_oldest_first() -> None:
    now = [0.0]
    recent = RecentWrites(window=10.0, clock=lambda: now[0])
    for step, key in enumerate(["a", "b", "a", "c"]):
        now[0] = float(step)
        recent.add(ReplayItem(key, step, 99.0, None))
    assert [(item.key, item.version) for item in recent.snapshot()] == [
        ("b", 1),
        ("a", 2),
        ("c", 3),
    ]
    now[0] = 12.5  # b (at 1) and a (at 2) are older than the window now
    assert [item.key for item in recent.snapshot()] == ["c"]
    assert len(recent) == 1
