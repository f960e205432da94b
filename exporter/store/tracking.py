"""Default-mode client tracking through one *lane* per primary: Redis remembers which keys this
replica holds, and tells it only about those.

Redis tracks, per connection, the keys it reads after `CLIENT CACHING YES` (OPTIN). When one of
them is written, deleted, expires or is evicted (from the data, or from Redis's tracking table,
bounded by `tracking-table-max-keys`), Redis sends that key's name, once, to the connection's
REDIRECT target: the replica's invalidation listener on that server (coherence.py). NOLOOP: a
connection is not told of its own writes. So a replica pays for the keys it holds, never for the
rest of the fleet's writes; and Redis pays one lookup per write, whatever the fleet's size.

Every command that registers a key goes through the lane of the key's server: reads that fill
memory (`CLIENT CACHING YES` + `GET`), and session writes (the write, then `CLIENT CACHING YES` +
`EXISTS`: a write ends every registration of its key, the `EXISTS` makes it again). With every
registration on the one connection that also writes, our own writes are never echoed back.

A lane is one connection used by many tasks at once: commands are written as they come and
replies matched in order (RESP2 answers in order), as they are read (reply_protocol.py). Not a
pooled connection: (redis-py 8.2's own client-side cache enables tracking on every pooled
connection instead, and flushes its cache whenever one disconnects, since a connection's
registrations end with it silently; then a write made on one pooled connection is reported to
every other that read the key.) A lane that ends makes coherence count tracking as lost. A
caller that gives up waiting (timeout) leaves its replies to be read and dropped: the lane stays
in step.

    lane = Lane(connection)
    await lane.open(listener_id)
    replies = await lane.call([CACHING_YES, ("GET", "sme:s:{a}")], timeout=0.25)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import hiredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from exporter.store.redis_client import PoolBusy
from exporter.store.reply_protocol import ReplyProtocol, take_over

Address: TypeAlias = tuple[str, int] | str
Command: TypeAlias = tuple[Any, ...]
CACHING_YES: Command = ("CLIENT", "CACHING", "YES")
LANE_NAME = "sme-tracking-lane"


def address_of(connection: AbstractConnection) -> Address:
    """Which server `connection` talks to: a unix socket's path, else (host, port)."""
    path = getattr(connection, "path", None)
    if path:
        return str(path)
    return str(getattr(connection, "host", "")), int(getattr(connection, "port", 0))


def _time_out(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class LaneClosed(RedisConnectionError):
    """The lane's connection ended: what was sent may or may not have run."""


class Lane:
    """One tracking connection to one server, shared by every caller (module docstring)."""

    def __init__(self, connection: AbstractConnection, slots: int = 64, wait: float = 1.0) -> None:
        """`slots`: calls in flight at most (the pool's bound: backpressure, as the pool gives);
        a caller waits up to `wait` seconds for one, then gets PoolBusy."""
        self.connection = connection
        self.connection.client_name = LANE_NAME
        self.slots = asyncio.Semaphore(slots)
        self.wait = wait
        # (replies expected, their future, the replies so far) in the order the commands went out
        self._pending: deque[tuple[int, asyncio.Future[list[Any]], list[Any]]] = deque()
        self._protocol: ReplyProtocol | None = None
        self.ended = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self.ended.is_set()

    async def open(self, listener_id: int, timeout: float) -> None:
        """Connect and turn tracking on, redirected to the listener `listener_id`."""
        connection = self.connection
        async with asyncio.timeout(timeout):
            await connection.connect()  # type: ignore[no-untyped-call]
            await connection.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", listener_id, "OPTIN", "NOLOOP"
            )
            await connection.read_response()
        protocol = self._protocol = take_over(connection, self._on_reply)
        protocol.ended.add_done_callback(self._protocol_ended)

    async def close(self) -> None:
        self._end(LaneClosed("tracking lane closed"))
        with contextlib.suppress(Exception):
            await self.connection.disconnect(nowait=True)

    async def call(self, commands: Sequence[Command], timeout: float) -> list[Any]:
        """The replies to `commands`, sent at once (Redis errors as values). LaneClosed if the
        lane has ended; TimeoutError after `timeout` (the lane stays in step)."""
        if self.closed:
            raise LaneClosed("tracking lane closed")
        slots = self.slots
        if slots.locked():
            try:
                async with asyncio.timeout(self.wait):
                    await slots.acquire()
            except TimeoutError:
                raise PoolBusy("no Redis connection became free in time") from None
        else:
            await slots.acquire()  # free: returns at once
        try:
            return await self._call(commands, timeout)
        finally:
            slots.release()

    async def _call(self, commands: Sequence[Command], timeout: float) -> list[Any]:
        protocol = self._protocol
        if self.closed or protocol is None:
            raise LaneClosed("tracking lane closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        try:
            # hiredis packs in C: redis-py's `pack_commands` took 11.7 µs for a session write's
            # three commands (its per-argument Python work), hiredis 1.4 µs: same bytes.
            protocol.write([hiredis.pack_command(command) for command in commands])
        except RedisConnectionError:
            self._end(LaneClosed("tracking lane closed"))
            raise LaneClosed("tracking lane closed") from None
        self._pending.append((len(commands), future, []))
        # A timer on the future, not `asyncio.timeout` (3.2 µs a call, against 0.7): a caller
        # that times out finds its future failed, and its replies are dropped when they come.
        expiry = loop.call_later(timeout, _time_out, future)
        try:
            return await future
        finally:
            expiry.cancel()

    def _on_reply(self, reply: Any) -> None:
        """Called by the protocol for each reply, as it arrives (no task in between)."""
        if not self._pending:
            raise LaneClosed("a reply nobody asked for: the lane is out of step")
        count, future, replies = self._pending[0]
        replies.append(reply)
        if len(replies) == count:
            self._pending.popleft()
            if not future.done():  # its caller may have stopped waiting
                future.set_result(replies)

    def _protocol_ended(self, ended: asyncio.Future[BaseException]) -> None:
        reason = ended.result()
        self._end(reason if isinstance(reason, LaneClosed) else LaneClosed(type(reason).__name__))

    def _end(self, exc: LaneClosed) -> None:
        self.ended.set()
        if self._protocol is not None:
            self._protocol.end(exc)
        while self._pending:
            _, future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(exc)


class Lanes:
    """The lanes in force, one per server address; none while tracking is down."""

    def __init__(self) -> None:
        self._lanes: dict[Address, Lane] = {}

    def publish(self, lanes: Mapping[Address, Lane]) -> None:
        self._lanes = dict(lanes)

    def withdraw(self) -> None:
        self._lanes = {}

    def lane(self, address: Address | None = None) -> Lane | None:
        """The open lane to `address` (None: the only one, for a single primary)."""
        lanes = self._lanes
        if not lanes:
            return None
        if address is None:
            lane = next(iter(lanes.values())) if len(lanes) == 1 else None
        else:
            lane = lanes.get(address)
        return lane if lane is not None and not lane.closed else None

    async def any_ended(self) -> None:
        """Return when one of the lanes in force ends."""
        waits = [asyncio.ensure_future(lane.ended.wait()) for lane in self._lanes.values()]
        if not waits:
            await asyncio.sleep(math.inf)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()


def raise_errors(replies: list[Any]) -> list[Any]:
    """`replies`, unless one is a Redis error: then that error."""
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies
