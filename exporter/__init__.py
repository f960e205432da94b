"""session-metrics-exporter: instrumented session managers exported to Prometheus.

As a library (docs/library.md): a tiered session store (memory in front of Redis, surviving Redis
outages) opened from plain arguments, and `exporter.library.aiohttp_session.TieredStorage` for
aiohttp-session.

    from exporter import open_session_manager

    async with open_session_manager("redis://127.0.0.1:6379/0", ttl=3600) as manager:
        session = await manager.create({"user": "ada"})
"""

from __future__ import annotations

from exporter.core.build import __version__
from exporter.core.errors import SessionNotFound, StoreUnavailable
from exporter.library.api import open_session_manager, open_store
from exporter.sessions.manager import SessionManager
from exporter.sessions.session import Session
from exporter.store.tiered_store import TieredStore

__all__ = [
    "Session",
    "SessionManager",
    "SessionNotFound",
    "StoreUnavailable",
    "TieredStore",
    "__version__",
    "open_session_manager",
    "open_store",
]
