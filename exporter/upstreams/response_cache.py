"""Figma responses cached in the tiered session store, under hashed `figma:` keys.

Keys are digests of the request's parts, so neither file keys nor node ids reach Redis key names
or any label; values are orjson documents or framed image bytes, and the decoded object is kept
with the memory-tier entry so a memory hit never decodes again.

    cache = ResponseCache(store, ttl=300, record=instrumentation.record_cache)
    key = cache.key("file", "FILEKEY", "depth=2")
    document = await cache.get(key, decode_json)     # None on a miss (or when Redis is down)
    await cache.put(key, orjson.dumps(doc), doc)
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson

from exporter.core.errors import StoreUnavailable
from exporter.store.contract import CacheRecorder, StoredValue

log = logging.getLogger(__name__)

NAMESPACE = "figma:"
T = TypeVar("T")
_IMAGE_MAGIC = b"FIG1"


class Store(Protocol):
    """The part of `TieredStore` the cache uses."""

    async def get(self, key: str, record: CacheRecorder | None = None) -> StoredValue | None: ...

    async def set(
        self, key: str, payload: bytes, ttl: float, decoded: object | None = None
    ) -> StoredValue: ...

    async def clear_memory(self, prefix: str | None = None) -> int: ...


@dataclass(frozen=True, slots=True)
class CachedImage:
    content_type: str
    data: bytes = field(repr=False)
    sha256: str

    @classmethod
    def of(cls, content_type: str, data: bytes) -> CachedImage:
        return cls(content_type, data, hashlib.sha256(data).hexdigest())


def decode_json(payload: bytes) -> Any:
    return orjson.loads(payload)


def encode_image(image: CachedImage) -> bytes:
    """`FIG1` + meta length + meta JSON + the image bytes: one value, one GET."""
    meta = orjson.dumps({"content_type": image.content_type, "sha256": image.sha256})
    return _IMAGE_MAGIC + struct.pack(">I", len(meta)) + meta + image.data


def decode_image(payload: bytes) -> CachedImage:
    if payload[:4] != _IMAGE_MAGIC:
        raise ValueError("not a cached image")
    (length,) = struct.unpack(">I", payload[4:8])
    meta = orjson.loads(payload[8 : 8 + length])
    return CachedImage(meta["content_type"], payload[8 + length :], meta["sha256"])


class ResponseCache:
    """get/put of Figma responses; a store outage is a miss, never an error."""

    def __init__(
        self, store: Store | None, ttl: float, record: CacheRecorder | None = None
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.record = record
        # Part of every key: `clear()` bumps it, so entries still in Redis become unreachable
        # (they expire with their TTL). Local to this replica; see `clear`.
        self.generation = 0

    def key(self, kind: str, *parts: str) -> str:
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
        return f"{NAMESPACE}{self.generation}:{kind}:{digest}"

    async def get(self, key: str, decode: Callable[[bytes], T]) -> T | None:
        if self.store is None:
            return None
        try:
            value = await self.store.get(key, self.record)
        except StoreUnavailable:
            return None  # Redis is down and memory does not hold it: ask the upstream instead
        if value is None:
            return None
        if value.decoded is None:
            try:
                value.decoded = decode(value.payload)
            except (ValueError, KeyError, struct.error):
                log.warning("dropping an undecodable cached Figma response")
                return None
        decoded: T = value.decoded  # type: ignore[assignment]
        return decoded

    async def put(self, key: str, payload: bytes, decoded: object) -> None:
        if self.store is None:
            return
        try:
            await self.store.set(key, payload, self.ttl, decoded)
        except StoreUnavailable:
            log.debug("Figma response not cached: store unavailable")

    async def clear(self) -> int:
        """Forget every cached response: memory entries are dropped now; Redis entries of older
        generations are no longer read by this replica and expire by TTL. Returns entries dropped.
        """
        self.generation += 1
        if self.store is None:
            return 0
        return await self.store.clear_memory(NAMESPACE)
