"""process_*, python_* and build_info on the app's own registry (never the global one)."""

from __future__ import annotations

import os
import subprocess
import sys

from prometheus_client import REGISTRY, CollectorRegistry

from exporter import __version__
from exporter.core.build import REVISION_ENV, revision
from exporter.core.metrics import Metrics


def test_process_and_runtime_metrics_are_on_the_apps_registry() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    assert (registry.get_sample_value("process_resident_memory_bytes") or 0) > 0
    assert (registry.get_sample_value("process_open_fds") or 0) > 0
    assert registry.get_sample_value("process_cpu_seconds_total") is not None
    assert registry.get_sample_value("python_gc_collections_total", {"generation": "0"}) is not None
    info = {s.name: s.labels for m in registry.collect() for s in m.samples}["python_info"]
    assert info["implementation"] == "CPython"
    # Two apps in one process each have their own collectors: nothing leaks to the global one.
    Metrics(CollectorRegistry())


def test_build_info_carries_the_revision() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    labels = {"version": __version__, "revision": revision(), "python": sys.version.split()[0]}
    assert registry.get_sample_value("session_exporter_build_info", labels) == 1.0
    assert revision() != ""


def test_revision_from_the_environment_and_version_flag() -> None:
    env = {**os.environ, REVISION_ENV: "abc123def"}
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"session-metrics-exporter {__version__} (revision abc123def)"


def test_the_global_registry_is_left_alone() -> None:
    before = {m.name for m in REGISTRY.collect()}
    Metrics(CollectorRegistry())
    assert {m.name for m in REGISTRY.collect()} == before
