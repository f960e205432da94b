from __future__ import annotations

import time

from exporter.core.access_stats import AccessStats


def test_reads_writes_hits_and_times_per_session() -> None:
    stats = AccessStats()
    now = time.perf_counter()
    stats.write("a", 0.004, now)
    stats.memory_read("a", 0.001, now)
    stats.other_read("a", 0.003, now)
    view = stats.view("a")
    assert view is not None
    assert (view["reads"], view["writes"]) == (2, 1)
    assert view["cache"] == {"memory_hits": 1, "memory_misses": 1, "hit_ratio": 0.5}
    assert view["avg_ms"] == 2.667 and view["max_ms"] == 4.0
    assert abs(view["last_access"] - time.time()) < 1
    assert stats.view("b") is None


def test_the_map_is_bounded_and_forgets_the_oldest() -> None:
    stats = AccessStats(max_sessions=3)
    for n in range(5):
        stats.memory_read(f"s{n}", 0.001, time.perf_counter())
    assert len(stats) == 3
    assert stats.view("s0") is None and stats.view("s1") is None and stats.view("s4") is not None
    stats.forget("s4")
    assert stats.view("s4") is None and len(stats) == 2


def test_a_full_map_forgets_its_oldest_sixteenth_and_keeps_the_newest() -> None:
    stats = AccessStats(max_sessions=64)
    for n in range(65):
        stats.write(f"s{n}", 0.001, time.perf_counter())
    kept = [n for n in range(65) if stats.view(f"s{n}") is not None]
    assert kept == list(range(4, 65))  # s0-s3 forgotten at once, the rest in order
