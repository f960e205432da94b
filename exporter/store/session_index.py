"""The session index: live sessions across all replicas, and every expiry counted exactly once.

Redis holds one sorted set per shard: member = session id, score = the session's expiry in Unix
milliseconds (the same instant as its key's PXAT). Every replica writes it alongside the session:

- a write of `s:{id}` is sent in one pipeline with `ZADD <shard> <expiry> <id>` (index first, so a
  sweep between the two never sees the old expiry of a session being extended); where one server
  holds both keys (standalone, Sentinel) the two run as one script instead;
- a delete removes the member only while its score is in the future (a Lua script), so an
  already-expired session stays for its expiry to be counted;
- a replayed outage journal is reconciled from what Redis holds after the replay (where one server
  holds both, inside each replayed write's script).

Expiries are *claimed*: a Lua script removes due members (score <= the server's TIME) and returns
them, so of all the replicas sweeping every second (and any replica that finds a session gone on a
read) exactly one removes each member and counts it. Keyspace notifications were not used: they
are off by default on managed Redis, fire on every node for every replica (each would have to
dedupe), and a replica that is down when one is published never sees it; the index has none of
these problems and costs one ZADD per write.

The active gauge is `ZCOUNT (now +inf` summed over shards, refreshed by a background task (never
at scrape time), plus this replica's own index changes since that refresh. A gate keeps index
writes out of the refresh's round trip, so a replica's own changes are never counted twice.

Redis Cluster: session keys hash to their own slots (`s:{id}`), so the index cannot share one;
it is split into shards whose keys carry their own hash tags (`{sessions-N}`), spread over the
primaries, each written in the same pipeline as the session (redis-py sends each command to its
node). Standalone and Sentinel use a single shard.

    index = SessionIndex(client, prefix="sme:", shards=1)
    await index.refresh(); index.active()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.store.contract import ReplayItem, decode_value, expires_ms

log = logging.getLogger(__name__)

# Redis TIME in ms, formatted without an exponent (Lua 5.1 numbers are doubles).
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nows = string.format('%.0f', now)
"""

# KEYS[1] shard; ARGV[1] member. Remove it only while live; 1 if removed.
REMOVE_LIVE = (
    _NOW
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) > now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
)

# KEYS[1] session key, KEYS[2] shard; ARGV: encoded value, pxat ms, member, '1' to refuse over a
# tombstone (an update of a session deleted meanwhile). The pipeline's SET (or PUT_UNLESS_DELETED)
# and ZADD in one script, for a server that holds both keys: ZADD's result (1 if the member is
# new), or -1 when refused, the member then not live (as the pipeline's REMOVE_LIVE leaves it).
PUT_INDEXED = """
if ARGV[4] == '1' then
  local cur = redis.call('GET', KEYS[1])
  if cur and string.match(cur, '^%d+:%d+:d') then
    redis.call('ZREM', KEYS[2], ARGV[3])
    return -1
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
"""

# reconcile_member(session key, shard, member, deleted, pxat ms): after a replayed write of the
# session, index it as Redis now holds it: `_reconciled_expiry` in Lua, for the replay's scripts
# where one server holds both keys (`redis_store.REPLAY_INDEXED`). Returns {1 or 0 (ZADD's
# result), the expiry indexed}, or {-1, 0} when a live member was removed, {0, 0} when there was
# nothing to remove.
RECONCILE_MEMBER_FN = """
local function reconcile_member(key, shard, member, deleted, pxat)
  local cur = redis.call('GET', key)
  local expires
  if cur then
    local exp, kind = string.match(cur, '^%d+:(%d+):(.)')
    if kind ~= 'd' then expires = exp end
  elseif not deleted then
    expires = pxat
  end
  if expires then
    return {redis.call('ZADD', shard, expires, member), tonumber(expires)}
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local score = redis.call('ZSCORE', shard, member)
  if score and tonumber(score) > now then
    redis.call('ZREM', shard, member)
    return {-1, 0}
  end
  return {0, 0}
end
"""

# KEYS[1] shard; ARGV[1] member. Claim it if due: returns its score (ms, as a string) or false.
CLAIM_ONE = (
    _NOW
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return score
end
return false
"""
)

# KEYS[1] shard; ARGV[1] batch size, ARGV[2] threshold ms. Claims up to a batch of due members;
# returns {claimed, claimed with a score above the threshold}.
CLAIM_DUE = (
    _NOW
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nows, 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[1]))
local members, above = {}, 0
for i = 1, #due, 2 do
  members[#members + 1] = due[i]
  if tonumber(due[i + 1]) > tonumber(ARGV[2]) then above = above + 1 end
end
if #members > 0 then redis.call('ZREM', KEYS[1], unpack(members)) end
return {#members, above}
"""
)

# KEYS[1] shard. Returns {live members, now ms}.
COUNT_LIVE = _NOW + "return {redis.call('ZCOUNT', KEYS[1], '(' .. nows, '+inf'), nows}"

ExpiredCallback = Callable[[int, float], None]


class _Gate:
    """Index writes share the gate; a refresh takes it alone, so none is in flight during its
    round trip (each write's effect is then either in the refreshed count or in the delta)."""

    def __init__(self) -> None:
        self.writers = 0
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()

    def write(self) -> _Gate:
        """`async with gate.write():` one index write. The gate is its own context manager,
        not an `asynccontextmanager`: every session write enters it, and the generator's
        set-up cost more than the write's own bookkeeping."""
        return self

    async def __aenter__(self) -> None:
        while not self._open.is_set():
            await self._open.wait()
        self.writers += 1
        self._idle.clear()

    async def __aexit__(self, *exc_info: object) -> None:
        self.writers -= 1
        if not self.writers:
            self._idle.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        self._open.clear()
        try:
            await self._idle.wait()
            yield
        finally:
            self._open.set()


class SessionIndex:
    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        namespace: str = "s:",
        shards: int = 1,
        refresh_interval: float = 1.0,
        sweep_interval: float = 1.0,
        sweep_batch: int = 500,
        timeout: float = 1.0,
        colocated: bool = False,
    ) -> None:
        """`colocated`: one server holds the session keys and the index (standalone, Sentinel),
        so a write and its ZADD run as one script instead of a pipeline (cheaper in redis-py:
        89 vs 116 µs per write, measured with 1000 concurrent writes)."""
        self.client = client
        self.colocated = colocated
        self._put_indexed = client.register_script(PUT_INDEXED) if colocated else None
        self.namespace = namespace
        self._opening = namespace + "{"
        self.shard_keys = [f"{prefix}session-index:{{sessions-{n}}}" for n in range(shards)]
        self.refresh_interval = refresh_interval
        self.sweep_interval = sweep_interval
        self.sweep_batch = sweep_batch
        self.timeout = timeout
        self._expired_listeners: list[ExpiredCallback] = []
        self.refreshed = False
        self._base = [0] * shards
        self._now_ms = [0] * shards  # each shard's server time at its last refresh
        self._delta = 0
        self._gate = _Gate()
        self._task: asyncio.Task[None] | None = None

    # -- which keys -----------------------------------------------------------------------------

    def covers(self, key: str) -> bool:
        """Whether `key` (logical) is a session key `s:{id}` itself (not a key derived from it)."""
        return key.startswith(self._opening) and key.find("}") == len(key) - 1

    def member(self, key: str) -> str:
        return key[len(self.namespace) + 1 : -1]

    def shard(self, member: str) -> int:
        return zlib.crc32(member.encode()) % len(self.shard_keys)

    # -- writes, pipelined with the session's own command ----------------------------------------

    async def put(
        self,
        full_key: str,
        encoded: bytes,
        expires_at: float,
        key: str,
        unless_deleted: str | None = None,
        run: Callable[[tuple[Any, ...]], Awaitable[Any]] | None = None,
    ) -> bool:
        """SET the session and ZADD its expiry in one round trip. An update passes the script that
        writes (value, PXAT) unless the session was deleted meanwhile (PUT_INDEXED makes the same
        check): False then, nothing written. `run(command)` sends the session's write (PUT_INDEXED
        where colocated) when the caller needs it on a connection of its own
        (`TrackedRedis.set`)."""
        shard, member = self.locate(key)
        pxat = expires_ms(expires_at)
        async with self._gate.write():
            if self._put_indexed is not None:
                args = [encoded, pxat, member, "0" if unless_deleted is None else "1"]
                keys = [full_key, self.shard_keys[shard]]
                if run is not None:
                    try:
                        added = await run(("EVALSHA", self._put_indexed.sha, 2, *keys, *args))
                    except NoScriptError:  # a restarted Redis: EVAL loads it again
                        added = await run(("EVAL", PUT_INDEXED, 2, *keys, *args))
                else:
                    added = await self._put_indexed(keys=keys, args=args)
                if added < 0:
                    return False
            else:
                added = await self._put_pipelined(
                    full_key, encoded, pxat, member, shard, unless_deleted, run
                )
                if added is None:
                    return False
            if added and pxat > self._now_ms[shard]:
                self._delta += 1
            return True

    async def _put_pipelined(
        self,
        full_key: str,
        encoded: bytes,
        pxat: int,
        member: str,
        shard: int,
        script: str | None,
        run: Callable[[tuple[Any, ...]], Awaitable[Any]] | None = None,
    ) -> int | None:
        """The write and its ZADD in one pipeline (on a Cluster each goes to its own node): ZADD's
        result, or None if the write was refused. With `run`, the write goes that way instead,
        beside the ZADD (both are sent at once, to their own nodes, as the pipeline does)."""
        if run is not None:
            write: tuple[Any, ...] = (
                ("SET", full_key, encoded, "PXAT", pxat)
                if script is None
                else ("EVAL", script, 1, full_key, encoded, pxat)
            )
            added, written = await asyncio.gather(
                self.client.zadd(self.shard_keys[shard], {member: pxat}), run(write)
            )
        else:
            pipe = self.client.pipeline(transaction=False)
            pipe.zadd(self.shard_keys[shard], {member: pxat})
            if script is None:
                pipe.set(full_key, encoded, pxat=pxat)
            else:
                pipe.eval(script, 1, full_key, encoded, pxat)
            added, written = await pipe.execute()
        if not written:  # refused: the member must not count as live
            await self.client.eval(REMOVE_LIVE, 1, self.shard_keys[shard], member)
            return None
        return int(added)

    async def delete(self, full_key: str, script: str, args: Sequence[Any], key: str) -> int:
        """Run the delete `script` on the session key and drop the member while it is live."""
        shard, member = self.locate(key)
        async with self._gate.write():
            pipe = self.client.pipeline(transaction=False)
            pipe.eval(script, 1, full_key, *args)
            pipe.eval(REMOVE_LIVE, 1, self.shard_keys[shard], member)
            result, removed = await pipe.execute()
            self._delta -= int(removed)
        return int(result)

    async def reconcile(self, items: Sequence[ReplayItem], prefix: str) -> None:
        """After a replay, make the index match what Redis now holds for the replayed sessions
        (where the index is not colocated: else each replayed write reconciles itself)."""
        items = [item for item in items if self.covers(item.key)]
        if not items:
            return
        reads = self.client.pipeline(transaction=False)
        for item in items:
            reads.get(prefix + item.key)
        raws = await reads.execute()
        async with self._gate.write():
            pipe = self.client.pipeline(transaction=False)
            shards: list[tuple[int, int | None]] = []
            for item, raw in zip(items, raws, strict=True):
                shard, member = self.locate(item.key)
                expires = _reconciled_expiry(item, raw)
                if expires is None:
                    pipe.eval(REMOVE_LIVE, 1, self.shard_keys[shard], member)
                else:
                    pipe.zadd(self.shard_keys[shard], {member: expires})
                shards.append((shard, expires))
            for (shard, expires), result in zip(shards, await pipe.execute(), strict=True):
                change = -int(result) if expires is None else int(result)
                self.count_reconciled(shard, change, expires or 0)

    def locate(self, key: str) -> tuple[int, str]:
        """The shard and member indexing the session key `key` (logical)."""
        member = self.member(key)
        return self.shard(member), member

    def writing(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held around index writes made outside this class (the colocated replay's scripts)."""
        return self._gate.write()

    def count_reconciled(self, shard: int, change: int, expires: int) -> None:
        """Count one reconciled member: `change` -1 removed while live, 1 newly added with
        `expires` (ms), 0 nothing new; a member added already expired is left to the sweeps."""
        if change < 0:
            self._delta += change
        elif change and expires > self._now_ms[shard]:
            self._delta += 1

    # -- expiry claims -----------------------------------------------------------------------------

    async def claim(self, session_id: str) -> bool:
        """Claim one session found gone on a read; True if this replica counted its expiry."""
        shard = self.shard(session_id)
        started = time.perf_counter()
        async with self._gate.write():
            score = await self.client.eval(CLAIM_ONE, 1, self.shard_keys[shard], session_id)
            if score is None:
                return False
            if float(score) > self._now_ms[shard]:
                self._delta -= 1
        self._count(1, time.perf_counter() - started)
        return True

    async def sweep(self) -> int:
        """Claim every due session (in batches); returns how many this replica counted."""
        total = 0
        for shard, key in enumerate(self.shard_keys):
            while True:
                raise_if_cancelled()
                started = time.perf_counter()
                async with self._gate.write():
                    claimed, above = await self.client.eval(
                        CLAIM_DUE, 1, key, self.sweep_batch, self._now_ms[shard]
                    )
                    self._delta -= int(above)
                if claimed:
                    self._count(int(claimed), time.perf_counter() - started)
                total += int(claimed)
                if claimed < self.sweep_batch:
                    break
        return total

    # -- the active gauge ------------------------------------------------------------------------

    def active(self) -> int:
        """Live sessions across replicas at the last refresh, plus this replica's changes since."""
        return max(0, sum(self._base) + self._delta)

    async def refresh(self) -> int:
        async with self._gate.exclusive():
            pipe = self.client.pipeline(transaction=False)
            for key in self.shard_keys:
                pipe.eval(COUNT_LIVE, 1, key)
            results = await pipe.execute()
            for shard, (count, now) in enumerate(results):
                self._base[shard] = int(count)
                self._now_ms[shard] = int(now)
            self._delta = 0
        self.refreshed = True
        return self.active()

    # -- background loop -------------------------------------------------------------------------

    async def start(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                await self.refresh()
        self._task = asyncio.create_task(self._run(), name="session-index")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        interval = min(self.refresh_interval, self.sweep_interval)
        last_sweep = last_refresh = 0.0
        failing = False
        while True:
            raise_if_cancelled()
            await asyncio.sleep(interval)
            now = time.monotonic()
            try:
                if now - last_sweep >= self.sweep_interval:
                    async with asyncio.timeout(self.timeout * 4):
                        await self.sweep()
                    last_sweep = now
                if now - last_refresh >= self.refresh_interval:
                    async with asyncio.timeout(self.timeout):
                        await self.refresh()
                    last_refresh = now
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: the store's fallback reports it; retry later
                if not failing:
                    log.info("session index not updated (%s); retrying", type(exc).__name__)
                failing = True

    def subscribe_expired(self, listener: ExpiredCallback) -> None:
        """Call `listener(count, seconds)` for the expiries this replica claims."""
        self._expired_listeners.append(listener)

    def _count(self, count: int, seconds: float) -> None:
        for listener in self._expired_listeners:
            listener(count, seconds)


def _reconciled_expiry(item: ReplayItem, raw: bytes | None) -> int | None:
    """The index score the replayed session should have, or None to remove it."""
    if raw is not None:
        value = decode_value(raw)
        return None if value is None else expires_ms(value.expires_at)  # None: a tombstone
    if item.value is None:
        return None  # deleted
    # Gone although our write was replayed: it expired (or was evicted). Index it with its expiry
    # so a sweep counts that expiry once.
    return expires_ms(item.expires_at)
