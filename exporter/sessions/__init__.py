"""Sessions: the store contract, the memory and Redis tiers, the tiered store, SessionManager.

Open one from plain arguments (see `library` and docs/library.md):

    async with open_session_manager("redis://127.0.0.1:6379/0", registry=registry) as manager:
        session = await manager.create({"user": "ada"})
"""

from __future__ import annotations

from exporter.sessions.library import open_session_manager, open_store

__all__ = ["open_session_manager", "open_store"]
