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
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    MaxConnectionsError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from exporter.core.errors import StoreBusy, StoreTimeout, StoreUnavailable, WritesRefused
from exporter.store.contract import (
    ReplayItem,
    StoredValue,
    decode_value,
    encode_value,
    expires_ms,
)
from exporter.store.fleet import Epoch, Member
from exporter.store.redis_client import REDIS_FAILURES, PoolBusy
from exporter.store.session_index import RECONCILE_MEMBER_FN, SessionIndex
from exporter.store.tracking import Command

# Versions are 19-digit decimal strings (time_ns); Lua numbers are doubles and would lose the
# last digits, so versions are compared as strings (length first, then lexically).
_NEWER = """
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
"""

# Delete is final: no write, live or replayed, ever replaces a tombstone (it lives until the
# session's own expiry, so tombstones are bounded by the sessions' TTLs). The version checks are
# Lua functions, so that the scripts below and the index's replay script share one definition.

# put_if_newer(key, version, encoded value, pxat ms): 1 written, 0 skipped (not newer, or the
# session was deleted).
_PUT_IF_NEWER_FN = """
local function put_if_newer(key, version, value, pxat)
  local cur = redis.call('GET', key)
  if cur then
    local v, kind = string.match(cur, '^(%d+):%d+:(.)')
    if v and (kind == 'd' or not newer(version, v)) then return 0 end
  end
  redis.call('SET', key, value, 'PXAT', pxat)
  return 1
end
"""

# delete_if_newer(key, version, live, fallback pxat ms). A delete always wins over a value, older
# or newer: it was acknowledged. A live delete (made now) of a missing or deleted key returns 0
# (not found); a replayed one leaves a tombstone even over a missing key, so a replayed write from
# another replica cannot resurrect the session. Returns the tombstone's expiry (ms) when it wrote
# one: the session's own, which the replica that deleted it may not have known.
_DELETE_IF_NEWER_FN = """
local function delete_if_newer(key, version, live, pxat)
  local cur = redis.call('GET', key)
  if cur then
    local v, exp, kind = string.match(cur, '^(%d+):(%d+):(.)')
    if v then
      if kind == 'd' then return 0 end
      if not newer(version, v) then version = v end
      pxat = exp
    end
  elseif live then
    return 0
  end
  redis.call('SET', key, version .. ':' .. pxat .. ':d', 'PXAT', pxat)
  return tonumber(pxat)
end
"""

# KEYS[1]; ARGV: version, encoded value, pxat ms.
PUT_IF_NEWER = (
    _NEWER + _PUT_IF_NEWER_FN + "return put_if_newer(KEYS[1], ARGV[1], ARGV[2], ARGV[3])\n"
)

# KEYS[1]; ARGV: encoded value, pxat ms. A live update: 1 written, 0 if the session was deleted
# (by any replica) after the update read it.
PUT_UNLESS_DELETED = """
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^%d+:%d+:d') then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
"""

# KEYS[1]; ARGV: version, live ('1' a delete made now, '0' a replayed one), fallback pxat ms.
DELETE_IF_NEWER = (
    _NEWER
    + _DELETE_IF_NEWER_FN
    + "return delete_if_newer(KEYS[1], ARGV[1], ARGV[2] == '1', ARGV[3])\n"
)

# KEYS[1] an index shard, KEYS[2..] session keys; ARGV: four per session key (version, encoded
# value or '' for a delete, pxat ms, member). Replayed writes and their index entries, for a server
# that holds both (standalone, Sentinel): {written, the index change, the indexed expiry} per
# session (see `SessionIndex.count_reconciled`). A Cluster replays, then reconciles in two more
# pipelines. At most REPLAY_SCRIPT_ITEMS writes per script: a script of 64 1 KiB sessions held
# Redis for 0.78-0.83 ms (SLOWLOG, on this machine with the test suite running beside it).
REPLAY_INDEXED = (
    _NEWER
    + _PUT_IF_NEWER_FN
    + _DELETE_IF_NEWER_FN
    + RECONCILE_MEMBER_FN
    + """
local out = {}
for i = 2, #KEYS do
  local at = (i - 2) * 4
  local version, value, pxat = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local deleted = value == ''
  local written
  if deleted then
    written = delete_if_newer(KEYS[i], version, false, pxat)
  else
    written = put_if_newer(KEYS[i], version, value, pxat)
  end
  local change = reconcile_member(KEYS[i], KEYS[1], ARGV[at + 4], deleted, pxat)
  out[#out + 1] = written
  out[#out + 1] = change[1]
  out[#out + 1] = change[2]
end
return out
"""
)
REPLAY_SCRIPT_ITEMS = 64


# The fleet's keys (see fleet.py), in one Cluster slot: the data epoch's marker (gone with
# Redis's data) and a hash of the replicas' records.
FLEET_EPOCH = "{fleet}:epoch"
FLEET_MEMBERS = "{fleet}:members"

# KEYS[1] the marker; ARGV: the marker expected ('' for none), the one to set. Returns the marker
# in force afterwards: ours, or the one another replica set first.
BEGIN_EPOCH = """
local cur = redis.call('GET', KEYS[1])
if (not cur and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return cur
"""


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """What one fleet sync read: the data epoch, every replica's record, the server's identity
    and its clock (`server_time`, between monotonic `sent` and `received`)."""

    epoch: Epoch | None
    members: dict[str, Member | None]
    run_id: str
    server_time: float
    sent: float
    received: float
    port: int = 0  # the server's own TCP port (INFO): which server answered, in logs


# What `RedisStore.get` returns for a deleted key (a final "not found", unlike a missing key).
TOMBSTONE = StoredValue(b"", 0, 0.0)


class RedisStore:
    """Redis-backed key/value tier. Keys given to it are logical; `prefix` is prepended here."""

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        prefix: str = "",
        timeout: float = 0.25,
        index: SessionIndex | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.last_latency_ms: float | None = None
        # Session keys are written together with their entry in the cross-replica index.
        self.index = index
        self._delete_if_newer = client.register_script(DELETE_IF_NEWER)
        self._put_unless_deleted = client.register_script(PUT_UNLESS_DELETED)

    async def get(self, key: str) -> StoredValue | None:
        """The value, None if missing, or `TOMBSTONE` (the same object) if it was deleted."""
        started = time.perf_counter()
        try:
            raw = await self.client.get(self.prefix + key)
        except REDIS_FAILURES as exc:
            raise _unavailable(exc) from None
        self.last_latency_ms = (time.perf_counter() - started) * 1000
        if raw is None:
            return None
        return decode_value(raw) or TOMBSTONE  # type: ignore[arg-type]

    async def set(
        self, key: str, value: StoredValue, *, replace: bool = False, run: Any = None
    ) -> bool:
        """Write `value`; with `replace` (an update of a value read before) only if the key was
        not deleted meanwhile: False then. `run(command)`: how to send the write's one command
        (`TrackedRedis.set`), else the client's own way."""
        index = self.index
        encoded, pxat = encode_value(value), expires_ms(value.expires_at)
        if index is not None and index.covers(key):
            script = PUT_UNLESS_DELETED if replace else None
            put = index.put(self.prefix + key, encoded, value.expires_at, key, script, run)
            return bool(await self._call(put))
        if run is not None:
            full_key = self.prefix + key
            if replace:
                command: Command = ("EVAL", PUT_UNLESS_DELETED, 1, full_key, encoded, pxat)
            else:
                command = ("SET", full_key, encoded, "PXAT", pxat)
            return bool(await self._call(run(command)))
        if replace:
            put = self._put_unless_deleted(keys=[self.prefix + key], args=[encoded, pxat])
            return bool(await self._call(put))
        await self._call(self.client.set(self.prefix + key, encoded, pxat=pxat))
        return True

    async def delete(self, key: str, version: int, expires_at: float) -> float | None:
        """Delete a live value now, leaving a tombstone until the session's own expiry (seconds,
        returned); None if there was no live value."""
        args = [version, 1, expires_ms(expires_at)]
        if self.index is not None and self.index.covers(key):
            deleted = self.index.delete(self.prefix + key, DELETE_IF_NEWER, args, key)
            result = await self._call(deleted)
        else:
            result = await self._call(self._delete_if_newer(keys=[self.prefix + key], args=args))
        return int(result) / 1000 if result else None

    async def replay(self, items: Sequence[ReplayItem]) -> list[bool]:
        """Apply journalled writes in one pipeline; True where written, False where older."""
        if self.index is not None and self.index.colocated:
            return await self._replay_indexed(items, self.index)
        # EVAL, not EVALSHA: redis-py refuses EVALSHA in Cluster pipelines, and EVAL needs no
        # script-loading round trip after a server restart.
        pipe = self.client.pipeline(transaction=False)
        for item in items:
            self._queue_replay(pipe, item)
        results = await self._call(pipe.execute())
        if self.index is not None:
            await self._call(self.index.reconcile(items, self.prefix))
        return [bool(result) for result in results]

    async def _replay_indexed(self, items: Sequence[ReplayItem], index: SessionIndex) -> list[bool]:
        """One server holds the sessions and the index: replayed session writes go in scripts of
        up to REPLAY_SCRIPT_ITEMS each, every write reconciling its index entry atomically. One
        round trip per batch instead of three (a GET and a ZADD per session after the replay),
        and one command per 64 writes instead of one each. With parked echoes checked by MGET
        (`get_many`), 10,000 journalled writes drained in 0.36-0.41 s instead of 0.88-1.14 s
        (three interleaved runs, durable journal; one pipelined raw SET of them: 0.36 s)."""
        by_shard: dict[int, list[tuple[int, ReplayItem, str]]] = {}
        others: list[int] = []  # positions of writes the index does not cover
        pipe = self.client.pipeline(transaction=False)
        for position, item in enumerate(items):
            if index.covers(item.key):
                shard, member = index.locate(item.key)
                by_shard.setdefault(shard, []).append((position, item, member))
            else:
                self._queue_replay(pipe, item)
                others.append(position)
        scripts: list[tuple[int, list[int]]] = []  # (shard, positions) per script, after others
        for shard, queued in by_shard.items():
            for start in range(0, len(queued), REPLAY_SCRIPT_ITEMS):
                chunk = queued[start : start + REPLAY_SCRIPT_ITEMS]
                keys = [index.shard_keys[shard]] + [self.prefix + item.key for _, item, _ in chunk]
                args = [arg for _, item, member in chunk for arg in _replay_args(item, member)]
                pipe.eval(REPLAY_INDEXED, len(keys), *keys, *args)
                scripts.append((shard, [position for position, _, _ in chunk]))
        written = [False] * len(items)
        async with index.writing():
            results = await self._call(pipe.execute())
            for position, result in zip(others, results, strict=False):
                written[position] = bool(result)
            for (shard, positions), result in zip(scripts, results[len(others) :], strict=True):
                for n, position in enumerate(positions):
                    done, change, expires = result[3 * n : 3 * n + 3]
                    index.count_reconciled(shard, int(change), int(expires))
                    written[position] = bool(done)
        return written

    def _queue_replay(self, pipe: Any, item: ReplayItem) -> None:
        key, pxat = self.prefix + item.key, expires_ms(item.expires_at)
        if item.value is None:
            pipe.eval(DELETE_IF_NEWER, 1, key, item.version, 0, pxat)
        else:
            pipe.eval(PUT_IF_NEWER, 1, key, item.version, encode_value(item.value), pxat)

    async def get_many(self, keys: Sequence[str]) -> list[StoredValue | None]:
        """One MGET (on a Cluster, whose keys span slots, a pipeline of GETs split per node);
        None for missing or deleted."""
        prefixed = [self.prefix + key for key in keys]
        if isinstance(self.client, RedisCluster):
            pipe = self.client.pipeline(transaction=False)
            for key in prefixed:
                pipe.get(key)
            raws = await self._call(pipe.execute())
        else:
            raws = await self._call(self.client.mget(prefixed))
        return [None if raw is None else decode_value(raw) for raw in raws]

    async def ping(self) -> float:
        """Round-trip time in milliseconds, or StoreUnavailable."""
        started = time.perf_counter()
        if isinstance(self.client, RedisCluster):  # every primary, not one random node
            await self._call(self.client.ping(target_nodes=RedisCluster.PRIMARIES))
        else:
            await self._call(self.client.ping())
        return (time.perf_counter() - started) * 1000

    async def reset_connections(self, *, in_use: bool = False) -> None:
        """Close the pool's idle connections (pooled before an outage, their sockets are dead);
        connections in use finish their command, unless `in_use` (they talk to a server that is
        no longer the master: their commands must fail, not be acknowledged)."""
        client = self.client
        if isinstance(client, RedisCluster):
            for node in client.get_nodes():
                await node.disconnect_free_connections()
        else:
            await client.connection_pool.disconnect(inuse_connections=in_use)

    async def probe_write(self) -> None:
        """One small write: WritesRefused while Redis still refuses writes."""
        await self._call(self.client.set(self.prefix + "probe:write", b"1", px=10_000))

    async def fleet_sync(self, replica: str, record: Member | None) -> FleetSnapshot:
        """One round trip (two on a Cluster): write this replica's record (unless None), read
        the epoch marker, every record, the run id and TIME of the server holding them."""
        epoch_key, members_key = self.prefix + FLEET_EPOCH, self.prefix + FLEET_MEMBERS
        client = self.client
        sent = time.monotonic()
        if isinstance(client, RedisCluster):
            node = client.get_node_from_key(epoch_key)
            keys = client.pipeline(transaction=False)
            if record is not None:
                keys.hset(members_key, replica, record.encode())
            keys.get(epoch_key)
            keys.hgetall(members_key)
            keyed, info, now = await self._call(
                asyncio.gather(
                    keys.execute(),
                    client.info("server", target_nodes=node),
                    client.time(target_nodes=node),
                )
            )
        else:
            pipe = client.pipeline(transaction=False)
            if record is not None:
                pipe.hset(members_key, replica, record.encode())
            pipe.get(epoch_key)
            pipe.hgetall(members_key)
            pipe.info("server")
            pipe.time()
            results = await self._call(pipe.execute())
            keyed, info, now = results[:-2], results[-2], results[-1]
        received = time.monotonic()
        marker, raw_members = keyed[-2], keyed[-1]
        return FleetSnapshot(
            Epoch.decode(marker),
            {_text(name): Member.decode(raw) for name, raw in raw_members.items()},
            str(info.get("run_id") or ""),
            int(now[0]) + int(now[1]) / 1e6,
            sent,
            received,
            int(info.get("tcp_port") or 0),
        )

    async def fleet_view(self) -> tuple[Epoch | None, dict[str, Member | None]]:
        """The epoch marker and every replica's record, in one round trip (what a miss checks)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.prefix + FLEET_EPOCH)
        pipe.hgetall(self.prefix + FLEET_MEMBERS)
        marker, raw_members = await self._call(pipe.execute())
        members = {_text(name): Member.decode(raw) for name, raw in raw_members.items()}
        return Epoch.decode(marker), members

    async def begin_epoch(self, expected: Epoch | None, new: Epoch) -> Epoch | None:
        """Replace the marker `expected` (None: no marker) with `new`, unless another replica
        already changed it; the epoch in force afterwards."""
        was = expected.encode() if expected is not None else b""
        result = await self._call(
            self.client.eval(BEGIN_EPOCH, 1, self.prefix + FLEET_EPOCH, was, new.encode())
        )
        return Epoch.decode(result)

    async def leave_fleet(self, *replicas: str) -> None:
        """Forget these replicas' records (this one shutting down; long-gone ones)."""
        await self._call(self.client.hdel(self.prefix + FLEET_MEMBERS, *replicas))

    async def raw_get(self, key: str) -> bytes | None:
        """The encoded bytes under `key` (tests and diagnostics)."""
        result: bytes | None = await self._call(self.client.get(self.prefix + key))
        return result

    async def _call(self, awaitable: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await awaitable
        except REDIS_FAILURES as exc:
            raise _unavailable(exc) from None
        self.last_latency_ms = (time.perf_counter() - started) * 1000
        return result


def _replay_args(item: ReplayItem, member: str) -> tuple[int, bytes, int, str]:
    """REPLAY_INDEXED's four arguments for one write: version, value ('' for a delete), pxat ms,
    index member."""
    value = b"" if item.value is None else encode_value(item.value)
    return item.version, value, expires_ms(item.expires_at), member


# Error prefixes of a Redis that answers but will not write (a replica, maxmemory with
# noeviction, a failing RDB save with stop-writes-on-bgsave-error, a password it now requires).
# NOREPLICAS: `min-replicas-to-write` not met. Redis still serves reads then, so it is a refusal
# (writes journalled, reads from Redis), not an outage.
REFUSALS = {
    "READONLY": "readonly",
    "OOM": "oom",
    "MISCONF": "misconf",
    "NOAUTH": "noauth",
    "NOREPLICAS": "noreplicas",
}


_REFUSAL_CODE = re.compile(r"(?:^|-|error: )(" + "|".join(REFUSALS) + r")\b")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def refusal_reason(exc: BaseException) -> str | None:
    """`readonly`, `oom`, `misconf`, `noauth` or `noreplicas` when `exc` is Redis refusing
    writes, else None."""
    # redis-py strips the code from the message of the errors it has classes for.
    if isinstance(exc, AuthenticationError):
        return "noauth"
    if isinstance(exc, ReadOnlyError):
        return "readonly"
    if isinstance(exc, OutOfMemoryError):
        return "oom"
    if not isinstance(exc, ResponseError):
        return None
    # The code leads the message, or follows "ERR ... -" (raised inside a script) or "...caused
    # error: " (a command of a pipeline).
    found = _REFUSAL_CODE.search(str(exc))
    return REFUSALS[found.group(1)] if found else None


def _unavailable(exc: BaseException) -> StoreUnavailable:
    # The message names the failure class only: Redis errors can echo the URL (and its password).
    if isinstance(exc, PoolBusy | MaxConnectionsError):
        return StoreBusy("no Redis connection became free in time")
    if isinstance(exc, RedisTimeoutError | asyncio.TimeoutError | TimeoutError):
        return StoreTimeout("Redis did not answer in time")
    reason = refusal_reason(exc)
    if reason is not None:
        return WritesRefused(reason)
    return StoreUnavailable(f"Redis unavailable ({type(exc).__name__})")
