"""The library: the tiered session store in your own application (docs/library.md).

`open_session_manager` / `open_store` from plain arguments (`api`), and `aiohttp_session`'s
`TieredStorage` for aiohttp-session (needs the `aiohttp-session` extra, so imported from its own
module).
"""

from __future__ import annotations

from exporter.library.api import open_session_manager, open_store

__all__ = ["open_session_manager", "open_store"]
