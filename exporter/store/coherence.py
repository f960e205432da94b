"""Coherence: keep every replica's memory tier in step with Redis via server-assisted invalidation.

For each primary (one for a single server or Sentinel's current master, every primary of a
Cluster) two dedicated RESP2 connections are opened, outside the client's pool:

- the *listener* runs `CLIENT ID`, then `SUBSCRIBE __redis__:invalidate`;
- the *tracker* runs `CLIENT TRACKING on REDIRECT <listener-id> BCAST PREFIX <prefix>...`, so the
  server publishes the name of every key under the prefixes that anyone modifies, expires or
  evicts to the listener, batched per event-loop cycle.

A key name → that memory entry is dropped (`TieredStore.invalidate`); a null message (FLUSHDB /
FLUSHALL) → the whole memory tier is dropped. Our own writes echo back too: the store keeps the
entry but stops serving it (*parks* it) until one GET shows Redis still holds our version, since
the same notice may also cover another replica's write that landed just after ours (see
`parking.py`); the echo of a new random key nobody else knows is simply consumed.

When a listener or tracker connection ends, or stops answering PINGs, the store bypasses its memory
tier at once (reads go to Redis). A PING on the data client then tells a lost channel (flush the
memory tier, keep bypassing) from a Redis outage (the store's fallback serves from memory, as
without coherence). A background loop re-establishes tracking on fresh connections; only then does
the memory tier serve again. `session_exporter_coherence_tracking_active` and the events
`tracking_lost` / `tracking_restored` make this visible.

    coherence = Coherence(deployment, store, prefixes=["sme:s:"], key_prefix="sme:", metrics=m)
    await coherence.start()   # tracking active, memory tier in use
    ...
    await coherence.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from exporter.core.errors import StoreUnavailable
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.store.redis_client import RedisDeployment, TrackedNode
from exporter.store.tiered_store import TieredStore

log = logging.getLogger(__name__)

CHANNEL = b"__redis__:invalidate"
LISTENER_NAME = "sme-invalidation-listener"
TRACKER_NAME = "sme-invalidation-tracker"
PING_INTERVAL = 1.0
TOPOLOGY_INTERVAL = 5.0


class ChannelLost(Exception):
    """A listener or tracker connection ended or stopped answering."""


class NodeChannel:
    """Listener + tracker connections to one primary."""

    def __init__(self, node: TrackedNode, prefixes: Sequence[str]) -> None:
        self.node = node
        self.prefixes = prefixes
        self.listener: AbstractConnection | None = None
        self.tracker: AbstractConnection | None = None
        self.listener_id: int | None = None
        now = time.monotonic()
        self.heard = [now, now]  # when the listener and the tracker last said anything

    async def open(self, timeout: float) -> None:
        """Subscribe the listener, then turn tracking on: from the tracker's OK on, every write
        under the prefixes reaches the listener."""
        self.listener = self.node.connect()
        self.listener.client_name = LISTENER_NAME
        async with asyncio.timeout(timeout):
            await self.listener.connect()  # type: ignore[no-untyped-call]
            await self.listener.send_command("CLIENT", "ID")
            self.listener_id = int(await self.listener.read_response())
            await self.listener.send_command("SUBSCRIBE", CHANNEL)
            await self.listener.read_response()
            self.tracker = self.node.connect()
            self.tracker.client_name = TRACKER_NAME
            await self.tracker.connect()  # type: ignore[no-untyped-call]
            prefix_args = [arg for prefix in self.prefixes for arg in ("PREFIX", prefix)]
            await self.tracker.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", self.listener_id, "BCAST", *prefix_args
            )
            await self.tracker.read_response()
        now = time.monotonic()
        self.heard = [now, now]

    async def close(self) -> None:
        for connection in (self.tracker, self.listener):
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.disconnect(nowait=True)

    async def listen(self, on_keys: Any) -> None:
        """Deliver invalidations until the listener's connection fails."""
        assert self.listener is not None
        read = self.listener.read_response
        while True:
            raise_if_cancelled()
            # No timer per read (it costs more than handling the message): `keep_alive` covers
            # a listener that goes quiet.
            message = await read(timeout=math.inf)
            self.heard[0] = time.monotonic()
            if message[0] == b"message" and message[1] == CHANNEL:
                on_keys(message[2])

    async def watch_tracker(self) -> None:
        """Return only by raising: the tracker's socket closing ends tracking on the server."""
        assert self.tracker is not None
        while True:
            raise_if_cancelled()
            await self.tracker.read_response(timeout=math.inf)  # PONGs, or the end
            self.heard[1] = time.monotonic()

    async def keep_alive(self, interval: float) -> None:
        """PING a connection quiet for half an interval; one that leaves a PING unanswered for two
        intervals is lost. Only an unanswered PING counts: quiet alone is not evidence."""
        assert self.listener is not None and self.tracker is not None
        connections = (("listener", self.listener), ("tracker", self.tracker))
        pinged: list[float | None] = [None, None]
        while True:
            raise_if_cancelled()
            await asyncio.sleep(interval / 2)
            now = time.monotonic()
            for index, (name, connection) in enumerate(connections):
                action = keep_alive_action(now, self.heard[index], pinged[index], interval)
                if action == "lost":
                    raise ChannelLost(f"{name} on {self.node.name} stopped answering")
                if action == "ping":
                    await connection.send_command("PING")
                    pinged[index] = now
                elif action == "ok":
                    pinged[index] = None


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
        channels = [NodeChannel(node, self.prefixes) for node in nodes]
        self.channels = channels
        await asyncio.gather(*(channel.open(self.timeout * 4) for channel in channels))
        self._restored()

    async def _watch(self) -> None:
        tasks = [
            asyncio.create_task(coro)
            for channel in self.channels
            for coro in (
                channel.listen(self._on_keys),
                channel.watch_tracker(),
                channel.keep_alive(self.ping_interval),
            )
        ]
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
        self._moved.set()

    async def _watch_moved(self) -> None:
        await self._moved.wait()  # cleared before the primaries were looked up
        raise ChannelLost("the primaries moved")

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
        invalidate = self.store.invalidate
        strip = self._strip
        for key in keys:
            invalidate(key[strip:].decode("utf-8", "replace"), "remote")

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
