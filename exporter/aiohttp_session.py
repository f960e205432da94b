"""The 0.1 import path of `TieredStorage`, kept working: see `exporter.library.aiohttp_session`."""

from __future__ import annotations

from exporter.library.aiohttp_session import TieredSession, TieredStorage

__all__ = ["TieredSession", "TieredStorage"]
