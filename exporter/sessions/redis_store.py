"""The Redis tier: one `redis.asyncio` client passed in, values encoded by `store.encode_value`.

A read is one GET; a write is one SET with PXAT (the value's own expiry, so the key's remaining TTL
is exactly what the encoded header says). Deletes leave a short-lived tombstone carrying the
delete's version, and replayed writes go through Lua scripts that compare versions inside Redis,
so a replica replaying its outage journal never overwrites (or resurrects) anything newer.

Every Redis failure surfaces as `StoreUnavailable` (or `StoreTimeout`); the client is built with
short timeouts and no retries (see `redis_client.client_options`), so a dead or hung server costs
one timeout, and the tiered store's breaker then stops calling it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from exporter.errors import StoreTimeout, StoreUnavailable
from exporter.sessions.store import (
    KIND_TOMBSTONE,
    StoredValue,
    decode_value,
    encode_value,
    expires_ms,
)

if TYPE_CHECKING:
    from exporter.sessions.session_index import SessionIndex

# Versions are 19-digit decimal strings (time_ns); Lua numbers are doubles and would lose the
# last digits, so versions are compared as strings (length first, then lexically).
_NEWER = """
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
"""

# KEYS[1]; ARGV: version, encoded value, pxat ms. Returns 1 written, 0 skipped (not newer).
PUT_IF_NEWER = (
    _NEWER
    + """
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = string.match(cur, '^(%d+):')
  if v and not newer(ARGV[1], v) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
"""
)

# KEYS[1]; ARGV: version, live ('1' a delete made now, '0' a replayed one), fallback pxat ms.
# A live delete removes only a live value (returns 0 if there is none) and always wins; a replayed
# delete is skipped if anything newer is there, and otherwise leaves a tombstone even over a
# missing key, so an older replayed write from another replica cannot resurrect the session.
DELETE_IF_NEWER = (
    _NEWER
    + """
local cur = redis.call('GET', KEYS[1])
local version, pxat, live = ARGV[1], ARGV[3], ARGV[2] == '1'
if cur then
  local v, exp, kind = string.match(cur, '^(%d+):(%d+):(.)')
  if v then
    if not newer(version, v) then
      if not live then return 0 end
      version = v
    end
    if kind == 'd' then
      if live then return 0 end
    else
      pxat = exp
    end
  end
elseif live then
  return 0
end
redis.call('SET', KEYS[1], version .. ':' .. pxat .. ':d', 'PXAT', pxat)
return 1
"""
)


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """One journalled write: a value to put, or (value None) a delete made at `version`."""

    key: str
    version: int
    expires_at: float
    value: StoredValue | None


class RedisStore:
    """Redis-backed key/value tier. Keys given to it are logical; `prefix` is prepended here."""

    def __init__(
        self, client: aioredis.Redis | RedisCluster, *, prefix: str = "", timeout: float = 0.25
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.last_latency_ms: float | None = None
        # Session keys are written together with their entry in the cross-replica index.
        self.index: SessionIndex | None = None
        self._put_if_newer = client.register_script(PUT_IF_NEWER)
        self._delete_if_newer = client.register_script(DELETE_IF_NEWER)

    async def get(self, key: str) -> StoredValue | None:
        started = time.perf_counter()
        try:
            raw = await self.client.get(self.prefix + key)
        except (TimeoutError, RedisError, OSError) as exc:
            raise _unavailable(exc) from None
        self.last_latency_ms = (time.perf_counter() - started) * 1000
        return None if raw is None else decode_value(raw)  # type: ignore[arg-type]

    async def set(self, key: str, value: StoredValue) -> None:
        index = self.index
        if index is not None and index.covers(key):
            put = index.put(self.prefix + key, encode_value(value), value.expires_at, key)
            await self._call(put)
            return
        await self._call(
            self.client.set(
                self.prefix + key, encode_value(value), pxat=expires_ms(value.expires_at)
            )
        )

    async def delete(self, key: str, version: int, expires_at: float) -> bool:
        """Delete a live value now (leaving a tombstone); False if there was none."""
        if self.index is not None and self.index.covers(key):
            args = [version, 1, expires_ms(expires_at)]
            deleted = self.index.delete(self.prefix + key, DELETE_IF_NEWER, args, key)
            return bool(await self._call(deleted))
        result = await self._call(
            self._delete_if_newer(
                keys=[self.prefix + key], args=[version, 1, expires_ms(expires_at)]
            )
        )
        return bool(result)

    async def replay(self, items: Sequence[ReplayItem]) -> list[bool]:
        """Apply journalled writes in one pipeline; True where written, False where older."""
        # EVAL, not EVALSHA: redis-py refuses EVALSHA in Cluster pipelines, and EVAL needs no
        # script-loading round trip after a server restart.
        pipe = self.client.pipeline(transaction=False)
        for item in items:
            key = self.prefix + item.key
            if item.value is None:
                pipe.eval(DELETE_IF_NEWER, 1, key, item.version, 0, expires_ms(item.expires_at))
            else:
                args = (item.version, encode_value(item.value), expires_ms(item.expires_at))
                pipe.eval(PUT_IF_NEWER, 1, key, *args)
        results = await self._call(pipe.execute())
        if self.index is not None:
            await self._call(self.index.reconcile(items, self.prefix))
        return [bool(result) for result in results]

    async def get_many(self, keys: Sequence[str]) -> list[StoredValue | None]:
        """One pipeline of GETs (split per node on a Cluster); None for missing or deleted."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.get(self.prefix + key)
        raws = await self._call(pipe.execute())
        return [None if raw is None else decode_value(raw) for raw in raws]

    async def ping(self) -> float:
        """Round-trip time in milliseconds, or StoreUnavailable."""
        started = time.perf_counter()
        if isinstance(self.client, RedisCluster):  # every primary, not one random node
            await self._call(self.client.ping(target_nodes=RedisCluster.PRIMARIES))
        else:
            await self._call(self.client.ping())
        return (time.perf_counter() - started) * 1000

    async def raw_get(self, key: str) -> bytes | None:
        """The encoded bytes under `key` (tests and diagnostics)."""
        result: bytes | None = await self._call(self.client.get(self.prefix + key))
        return result

    async def _call(self, awaitable: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await awaitable
        except (TimeoutError, RedisError, OSError) as exc:
            raise _unavailable(exc) from None
        self.last_latency_ms = (time.perf_counter() - started) * 1000
        return result


def is_tombstone(raw: bytes) -> bool:
    return raw.split(b":", 2)[2][:1] == KIND_TOMBSTONE


def _unavailable(exc: BaseException) -> StoreUnavailable:
    # The message names the failure class only: Redis errors can echo the URL (and its password).
    if isinstance(exc, RedisTimeoutError | asyncio.TimeoutError | TimeoutError):
        return StoreTimeout("Redis did not answer in time")
    return StoreUnavailable(f"Redis unavailable ({type(exc).__name__})")
