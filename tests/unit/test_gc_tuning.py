"""The server's collector tuning, in a fresh interpreter (it changes process-wide state)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from exporter.core.errors import ConfigError
from exporter.core.settings import parse_settings

SCRIPT = """
import gc, json
held = [[] for _ in range(20_000)]  # start-up objects
from exporter.app.gc_tuning import tune_collector
tune_collector(12_345)
walked = len(gc.get_objects())  # what the generations hold, the frozen objects not
print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "walked": walked}))
"""


def test_start_up_objects_are_frozen_and_the_young_threshold_is_set() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    figures = json.loads(done.stdout)
    assert figures["threshold"][0] == 12_345
    assert figures["frozen"] > 20_000
    assert figures["walked"] < 100  # nothing left for a full collection but what comes next


def test_the_threshold_must_be_a_positive_count() -> None:
    assert parse_settings({}).gc_young_threshold == 10_000
    with pytest.raises(ConfigError, match="gc-young-threshold"):
        parse_settings({"gc_young_threshold": "0"})
