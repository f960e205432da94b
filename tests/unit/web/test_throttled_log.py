"""A repeated warning: the first at once, then one line per interval with a count."""

from __future__ import annotations

import logging

import pytest

from exporter.web.throttled_log import ThrottledLog


def test_one_line_per_interval_saying_how_many_were_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    warn = ThrottledLog(logging.getLogger("t"), interval=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for second in (0.0, 1.0, 2.0, 59.9, 60.5, 61.0, 200.0):
            now[0] = second
            warn.log("slow client %s", "10.0.0.1")
    assert [r.getMessage() for r in caplog.records] == [
        "slow client 10.0.0.1",
        "slow client 10.0.0.1 (3 more like it since the previous line)",
        "slow client 10.0.0.1 (1 more like it since the previous line)",
    ]
