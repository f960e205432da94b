"""Figma responses cached in the tiered session store, under hashed `figma:` keys.

Keys are digests of the request's parts, so neither file keys nor node ids reach Redis key names
or any label; values are orjson documents or framed image bytes, and the decoded object is kept
with the memory-tier entry so a memory hit never decodes again.

    cache = ResponseCache(store, ttl=300, record=instrumentation.record_cache)
    key = cache.key("file", "FILEKEY", "depth=2")
    document = await cache.get(key, decode_json)     # None on a miss (or when Redis is down)
    await cache.put(key, orjson.dumps(doc), doc)
    entry = await cache.lookup(key, decode_json)     # with its size and expiry

The cache remembers (bounded) which keys it stored and until when: a miss on one of them before
its expiry is a copy lost early (evicted by the Figma byte budget, or dropped from Redis), counted
in `lost` and `lost_bytes` for the cache-stats recommendations.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import orjson

from exporter.core.errors import StoreUnavailable
from exporter.store.contract import CacheRecorder, StoredValue

log = logging.getLogger(__name__)

NAMESPACE = "figma:"
T = TypeVar("T")
_IMAGE_MAGIC = b"FIG1"
STORED_KEYS_LIMIT = 10_000  # keys remembered to tell an early loss from a plain miss (~1 MB)


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


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """A cached response with its stored size and expiry (the store's clock)."""

    value: T
    size: int
    expires_at: float


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
        self,
        store: Store | None,
        ttl: float,
        record: CacheRecorder | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.record = record
        self.clock = clock  # the store's (fleet) clock, which its expiry times follow
        self._stored: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key: expiry, size
        self.lost = 0
        self.lost_bytes = 0
        # Part of every key: `clear()` bumps it, so entries still in Redis become unreachable
        # (they expire with their TTL). Local to this replica; see `clear`.
        self.generation = 0

    def key(self, kind: str, *parts: str) -> str:
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
        return f"{NAMESPACE}{self.generation}:{kind}:{digest}"

    async def get(
        self, key: str, decode: Callable[[bytes], T], *, counted: bool = True
    ) -> T | None:
        entry = await self.lookup(key, decode, counted=counted)
        return entry.value if entry is not None else None

    async def lookup(
        self, key: str, decode: Callable[[bytes], T], *, counted: bool = True
    ) -> Entry[T] | None:
        """The entry under `key`, decoded; None on a miss, a store outage or an undecodable one.
        `counted=False`: bookkeeping (a version record), not a lookup the hit ratio counts."""
        if self.store is None:
            return None
        try:
            value = await self.store.get(key, self.record if counted else None)
        except StoreUnavailable:
            return None  # Redis is down and memory does not hold it: ask the upstream instead
        if value is None:
            if counted:
                self._note_miss(key)
            return None
        if value.decoded is None:
            try:
                value.decoded = decode(value.payload)
            except (ValueError, KeyError, struct.error):
                log.warning("dropping an undecodable cached Figma response")
                return None
        decoded: T = value.decoded  # type: ignore[assignment]
        return Entry(decoded, value.size, value.expires_at)

    async def put(
        self,
        key: str,
        payload: bytes,
        decoded: object,
        ttl: float | None = None,
        *,
        counted: bool = True,
    ) -> None:
        """Store a response for `ttl` seconds (default: the cache's TTL); `counted=False`:
        bookkeeping, not remembered for telling early losses (see `lookup`)."""
        if self.store is None:
            return
        seconds = self.ttl if ttl is None else ttl
        try:
            await self.store.set(key, payload, seconds, decoded)
        except StoreUnavailable:
            log.debug("Figma response not cached: store unavailable")
            return
        if not counted:
            return
        self._stored[key] = (self.clock() + seconds, len(payload))
        self._stored.move_to_end(key)
        if len(self._stored) > STORED_KEYS_LIMIT:
            self._stored.popitem(last=False)

    def _note_miss(self, key: str) -> None:
        stored = self._stored.pop(key, None)
        if stored is not None and stored[0] > self.clock():
            self.lost += 1
            self.lost_bytes += stored[1]

    async def clear(self) -> int:
        """Forget every cached response: memory entries are dropped now; Redis entries of older
        generations are no longer read by this replica and expire by TTL. Returns entries dropped.
        """
        self.generation += 1
        self._stored.clear()
        if self.store is None:
            return 0
        return await self.store.clear_memory(NAMESPACE)
