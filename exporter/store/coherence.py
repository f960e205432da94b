"""Coherence: keep every replica's memory tier in step with Redis via server-assisted invalidation
in default mode, so a replica hears only of the keys it holds.

For each primary (one for a single server or Sentinel's current master, every primary of a
Cluster) two dedicated RESP2 connections are opened, outside the client's pool:

- the *listener* runs `CLIENT ID`, then `SUBSCRIBE __redis__:invalidate`;
- the *lane* runs `CLIENT TRACKING on REDIRECT <listener-id> OPTIN NOLOOP`; the store sends
  through it every read that fills memory and every session write, each registering its key
  (`CLIENT CACHING YES`; see tracking.py).

When a registered key is written, deleted, expires or is evicted (from the data or from Redis's
bounded tracking table), Redis sends its name once to the listener: that memory entry is dropped
(`TieredStore.invalidate`); a null message (FLUSHDB / FLUSHALL) drops the whole memory tier. Our
own writes through the lane are not reported (NOLOOP). Redis 7 does not report either the
tracking-table evictions that the lane's own commands trigger: so a table near its bound counts
as tracking lost (`TABLE_HEADROOM`).

When the listener or the lane ends, or the listener stops answering PINGs, the store bypasses its
memory tier at once (reads go to Redis). A PING on the data client then tells a lost channel
(flush the memory tier, keep bypassing) from a Redis outage (the store's fallback serves from
memory, as without coherence). A background loop re-establishes tracking on fresh connections;
only then does the memory tier serve again. `session_exporter_coherence_tracking_active` and the
events `tracking_lost` / `tracking_restored` make this visible;
`session_exporter_coherence_invalidation_keys_total` counts the keys Redis named, by what the
memory tier did with each.

    coherence = Coherence(deployment, store, prefixes=["sme:s:"], key_prefix="sme:", metrics=m)
    await coherence.start()   # tracking active, memory tier in use
    ...
    await coherence.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from exporter.core.errors import StoreUnavailable
from exporter.core.event_log import EventLog
from exporter.core.metrics import INVALIDATION_RESULTS, Metrics
from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.store.redis_client import RedisDeployment, TrackedNode
from exporter.store.reply_protocol import ReplyProtocol, take_over
from exporter.store.tiered_store import TieredStore
from exporter.store.tracking import Address, Lane, Lanes, address_of

log = logging.getLogger(__name__)

CHANNEL = b"__redis__:invalidate"
LISTENER_NAME = "sme-invalidation-listener"
PING = b"*1\r\n$4\r\nPING\r\n"
PING_INTERVAL = 1.0
# Redis evicts keys from a full tracking table, and with NOLOOP it does not tell the connection
# whose command triggered the eviction (Redis 7: `target == server.current_client`). So the
# memory tier is trusted only while every primary's table stays below this share of its bound.
TABLE_HEADROOM = 0.9
TOPOLOGY_INTERVAL = 5.0


class ChannelLost(Exception):
    """The listener or the lane ended, or the listener stopped answering."""


class NodeChannel:
    """The invalidation listener and the tracking lane on one primary."""

    def __init__(
        self, node: TrackedNode, limits: tuple[int, float], on_keys: Callable[[Any], None]
    ) -> None:
        self.node = node
        self.limits = limits  # the lane's calls in flight at most, and the wait for one
        self.on_keys = on_keys
        self.listener: AbstractConnection | None = None
        self.listener_id: int | None = None
        self.protocol: ReplyProtocol | None = None  # reads the listener once it is subscribed
        self.lane: Lane | None = None

    async def open(self, timeout: float) -> None:
        """Subscribe the listener, then open the lane that redirects to it: from the lane's
        first command on, whatever it registers is reported to us (`on_keys`, at once)."""
        self.listener = self.node.connect()
        self.listener.client_name = LISTENER_NAME
        async with asyncio.timeout(timeout):
            await self.listener.connect()  # type: ignore[no-untyped-call]
            await self.listener.send_command("CLIENT", "ID")
            self.listener_id = int(await self.listener.read_response())
            await self.listener.send_command("SUBSCRIBE", CHANNEL)
            await self.listener.read_response()
        self.protocol = take_over(self.listener, self._on_message)
        self.lane = Lane(self.node.connect(), *self.limits)
        await self.lane.open(self.listener_id, timeout)

    @property
    def address(self) -> Address:
        assert self.listener is not None
        return address_of(self.listener)

    @property
    def heard(self) -> float:
        """When the listener last said anything."""
        assert self.protocol is not None
        return self.protocol.heard

    async def close(self) -> None:
        if self.lane is not None:
            await self.lane.close()
        if self.protocol is not None:
            self.protocol.end(RedisConnectionError("closed"))
        if self.listener is not None:
            with contextlib.suppress(Exception):
                await self.listener.disconnect(nowait=True)

    def _on_message(self, message: Any) -> None:
        # Called by the protocol for each message, as it arrives (no task in between).
        if message[0] == b"message" and message[1] == CHANNEL:
            self.on_keys(message[2])

    async def listen(self) -> None:
        """Return never: raise why the listener's connection ended."""
        assert self.protocol is not None
        raise await self.protocol.ended

    async def keep_alive(self, interval: float) -> None:
        """PING the listener when quiet for half an interval; one that leaves a PING unanswered
        for two intervals is lost. Only an unanswered PING counts: quiet alone is not evidence."""
        assert self.protocol is not None
        pinged: float | None = None
        while True:
            raise_if_cancelled()
            await asyncio.sleep(interval / 2)
            now = time.monotonic()
            action = keep_alive_action(now, self.heard, pinged, interval)
            if action == "lost":
                raise ChannelLost(f"listener on {self.node.name} stopped answering")
            if action == "ping":
                self.protocol.write((PING,))
                pinged = now
            elif action == "ok":
                pinged = None


def keep_alive_action(now: float, heard: float, pinged: float | None, interval: float) -> str:
    """What the keep-alive does for one connection: "ping", "wait" (for an answer), "lost", "ok".

    A PING is answered when the connection was heard after it was sent. Under load the answer may
    be read a little after a check, so a quiet spell shorter than two intervals is never a loss.
    """
    if pinged is not None and heard < pinged:
        return "lost" if now - pinged >= 2 * interval else "wait"
    return "ping" if now - heard >= interval / 2 else "ok"


class Coherence:
    def __init__(
        self,
        deployment: RedisDeployment,
        store: TieredStore,
        *,
        prefixes: Sequence[str],
        key_prefix: str,
        metrics: Metrics,
        events: EventLog | None = None,
        timeout: float = 0.25,
        retry_interval: float = 0.5,
        ping_interval: float = PING_INTERVAL,
        topology_interval: float = TOPOLOGY_INTERVAL,
    ) -> None:
        self.deployment = deployment
        self.store = store
        self.prefixes = tuple(prefixes)
        self.key_prefix = key_prefix.encode()
        # The lane to each primary: the store's reads and writes of these (logical) prefixes
        # go through them, registering their keys (tracking.py).
        self.lanes = Lanes()
        if store.tracked is not None:
            logical = tuple(prefix.removeprefix(key_prefix) for prefix in self.prefixes)
            store.tracked.track(self.lanes, logical)
        self.events = events
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.ping_interval = ping_interval
        self.topology_interval = topology_interval
        self.active = False
        self.channels: list[NodeChannel] = []
        self.losses = 0
        self.lost_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._moved = asyncio.Event()
        self._gauge = metrics.coherence_tracking_active
        self._keys = {
            result: metrics.coherence_invalidation_keys.labels(result)
            for result in INVALIDATION_RESULTS
        }
        self._strip = len(self.key_prefix)

    def status(self) -> dict[str, object]:
        """What /persistence shows: is the memory tier coherent right now, and since when not."""
        return {
            "tracking_active": self.active,
            "memory_bypassed": self.store.reads.bypass,
            "listeners": len(self.listener_ids),
            "losses": self.losses,
            "lost_since": self.lost_since,
        }

    @property
    def listener_ids(self) -> list[int]:
        """CLIENT IDs of the current listeners (diagnostics and tests)."""
        return [c.listener_id for c in self.channels if c.listener_id is not None]

    async def start(self) -> None:
        """Try once to establish tracking (so a healthy start serves from memory at once), then
        keep it up in the background."""
        self.store.tier.coherence_lost()  # nothing is tracked yet: no memory-tier reads until it is
        try:
            await self._establish()
        except Exception as exc:
            self._note_down(exc, first=True)
        self._task = asyncio.create_task(self._run(), name="coherence")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._close_channels()

    # -- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            raise_if_cancelled()
            if not self.active:
                await asyncio.sleep(self.retry_interval)
                try:
                    await self._establish()
                except Exception as exc:
                    self._note_down(exc)
                    continue
            try:
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the channel ended: bypass now, then tell outage from loss
                await self._lost(exc)

    async def _establish(self) -> None:
        await self._close_channels()
        self._moved.clear()  # a move announced from here on is after this lookup: it counts
        async with asyncio.timeout(self.timeout * 4):
            nodes = await self.deployment.primaries()
        limits = self.deployment.pool_limits()
        channels = [NodeChannel(node, limits, self._on_keys) for node in nodes]
        self.channels = channels
        await asyncio.gather(*(channel.open(self.timeout * 4) for channel in channels))
        full = await self._table_full()
        if full is not None:
            raise ChannelLost(full)
        if self._moved.is_set():  # during the awaits above: these may be the old master's
            raise ChannelLost("the primaries moved while tracking was being established")
        self.lanes.publish(
            {channel.address: channel.lane for channel in channels if channel.lane is not None}
        )
        self._restored()

    async def _watch(self) -> None:
        raise_if_cancelled()  # `_establish` may have swallowed close()'s cancel (see tasks.py)
        tasks = [
            asyncio.create_task(coro)
            for channel in self.channels
            for coro in (channel.listen(), channel.keep_alive(self.ping_interval))
        ]
        tasks.append(asyncio.create_task(self._watch_lanes()))
        tasks.append(asyncio.create_task(self._watch_table()))
        if self.deployment.kind != "standalone":
            tasks.append(asyncio.create_task(self._watch_topology()))
            tasks.append(asyncio.create_task(self._watch_moved()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
            raise ChannelLost("invalidation channel ended")
        finally:
            await cancel_and_wait(*tasks)

    def primaries_moved(self) -> None:
        """The primaries changed (Sentinel announced a new master): stop trusting the channels
        at once, and track the new ones. Until then the memory tier is bypassed: the old master
        hears nothing of the writes the new one takes."""
        self.store.tier.coherence_lost()
        self.lanes.withdraw()  # nothing more through the old master's lane: the pool follows
        self._moved.set()

    async def _watch_moved(self) -> None:
        await self._moved.wait()  # cleared before the primaries were looked up
        raise ChannelLost("the primaries moved")

    async def _watch_lanes(self) -> None:
        """A lane ended: Redis forgot, without a word, every key it registered."""
        await self.lanes.any_ended()
        raise ChannelLost("a tracking lane closed")

    async def _watch_table(self) -> None:
        """Redis's tracking table nearly full: its evictions may go unreported (TABLE_HEADROOM)."""
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.ping_interval)
            full = await self._table_full()
            if full is not None:
                raise ChannelLost(full)

    async def _table_full(self) -> str | None:
        """Why the tracking table of some primary is too full to rely on; None if it is not (or
        could not be read: that is no evidence)."""
        try:
            async with asyncio.timeout(self.timeout * 4):
                tables = await self.deployment.tracking_tables()
        except Exception:
            return None
        for keys, limit in tables:
            if limit and keys >= TABLE_HEADROOM * limit:
                return (
                    f"Redis's tracking table holds {keys} keys of at most {limit}"
                    " (raise tracking-table-max-keys)"
                )
        return None

    async def _watch_topology(self) -> None:
        """Cluster primaries or the Sentinel master may move: then track the new ones."""
        names = sorted(channel.node.name for channel in self.channels)
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.topology_interval)
            with contextlib.suppress(Exception):  # a failed lookup is not a changed topology
                async with asyncio.timeout(self.timeout * 4):
                    nodes = await self.deployment.primaries()
                if sorted(node.name for node in nodes) != names:
                    raise ChannelLost("the primaries changed")

    # -- invalidations ---------------------------------------------------------------------------

    def _on_keys(self, keys: list[bytes] | None) -> None:
        if keys is None:  # FLUSHDB / FLUSHALL
            self.store.flush_memory("flush", keep_for_reseed=False)  # the operator's choice
            return
        invalidate, counted = self.store.invalidate, self._keys
        strip = self._strip
        for key in keys:
            counted[invalidate(key[strip:].decode("utf-8", "replace"), "remote")].inc()

    # -- state changes -------------------------------------------------------------------------

    def _restored(self) -> None:
        self.store.tier.coherence_restored()
        was_lost = self.lost_since is not None
        self.active = True
        self._gauge.set(1)
        names = ", ".join(channel.node.name for channel in self.channels)
        if was_lost:
            down = time.time() - (self.lost_since or time.time())
            message = f"invalidation tracking re-established on {names} after {down:.1f}s"
            log.info(message)
            self._event(
                "tracking_restored", message, nodes=len(self.channels), down_seconds=round(down, 3)
            )
        else:
            log.info("invalidation tracking active on %s", names)
        self.lost_since = None

    async def _lost(self, exc: BaseException) -> None:
        # Bypass first: nothing may be served from memory untracked.
        self.store.tier.coherence_lost()
        self.lanes.withdraw()
        self.active = False
        self.losses += 1
        self.lost_since = time.time()
        self._gauge.set(0)
        await self._close_channels()
        reason = _describe(exc)
        started = self.store.loop_lag.clock()
        unreachable: BaseException | None = None
        try:
            async with asyncio.timeout(self.timeout):
                await self.deployment.ping()
        except (RedisError, OSError, TimeoutError) as ping_exc:
            if not self._stalled_timeout(ping_exc, started):
                unreachable = ping_exc
        if unreachable is not None:
            # Redis itself is unreachable: an outage, which the store's fallback handles (serving
            # from memory, journalling writes); its failback flushes the memory tier later.
            unavailable = StoreUnavailable(f"Redis unavailable ({_describe(unreachable)})")
            self.store.report_unavailable(unavailable)
            message = f"invalidation tracking lost ({reason}); Redis unreachable, store in fallback"
        else:
            flushed = await self._drop_untracked()
            message = (
                f"invalidation tracking lost ({reason}); memory tier flushed ({flushed} entries) "
                "and bypassed until tracking is re-established"
            )
        log.warning(message)
        self._event("tracking_lost", message, reason=reason)

    def _stalled_timeout(self, exc: BaseException, started: float) -> bool:
        """A PING timeout while our own loop stalled: its answer may have been waiting unread,
        so it proves no outage (the tier is flushed and bypassed, as for a reachable Redis)."""
        timed_out = isinstance(exc, TimeoutError | RedisTimeoutError)
        calls = self.store.calls
        return timed_out and calls is not None and calls.stalled_since(started)

    async def _drop_untracked(self) -> int:
        """Flush memory after tracking was lost while Redis stayed reachable; returns how many.
        The fleet is synced first: a lost connection may be a Redis that restarted without its
        data, and what memory holds is then re-seeded before it is dropped."""
        recovery = self.store.recovery
        if recovery is not None:
            try:
                await recovery.sync()
            except StoreUnavailable as exc:
                self.store.report_unavailable(exc)
        if self.store.coherent or self.store.fallback_active:
            return 0  # tracking is back, or the fallback serves memory (flushed at failback)
        return self.store.flush_memory("tracking_lost")

    def _note_down(self, exc: BaseException, *, first: bool = False) -> None:
        if first:
            self.lost_since = time.time()
            log.warning(
                "invalidation tracking not established yet (%s); memory tier bypassed",
                _describe(exc),
            )
        else:
            log.debug("re-establishing invalidation tracking failed: %s", _describe(exc))

    async def _close_channels(self) -> None:
        self.lanes.withdraw()
        channels, self.channels = self.channels, []
        await asyncio.gather(*(channel.close() for channel in channels))

    def _event(self, type: str, message: str, **details: object) -> None:
        if self.events is not None:
            self.events.record(type, message, **details)


def _describe(exc: BaseException) -> str:
    # Class names and our own messages only: Redis errors may echo addresses or credentials.
    if isinstance(exc, ChannelLost):
        return str(exc)
    return type(exc).__name__
