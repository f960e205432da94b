"""prometheus_client's collectors of the Python runtime, on the app's registry: process_* (CPU,
memory, file descriptors: local /proc reads), python_info and python_gc_*.

    register_runtime_collectors(registry)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector


def register_runtime_collectors(registry: CollectorRegistry) -> None:
    """The runtime collectors on `registry`, not on prometheus_client's global one."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
