"""Default-mode client tracking on the data connections: Redis remembers which keys this replica
holds, and tells it only about those.

Redis tracks, per connection, the keys it reads after `CLIENT CACHING YES` (OPTIN). When one of
them is written, deleted, expires or is evicted (from the data, or from Redis's tracking table,
bounded by `tracking-table-max-keys`), Redis sends that key's name, once, to the connection's
REDIRECT target: the replica's invalidation listener on that server (coherence.py). NOLOOP: a
connection is not told of its own writes. So a replica pays for the keys it holds, never for the
rest of the fleet's writes; and Redis pays one lookup per write, whatever the fleet's size.

A data connection enables tracking itself, lazily, in the same round trip as its first tracked
command (`CLIENT TRACKING on REDIRECT <listener> OPTIN NOLOOP`), once per listener generation.
(redis-py 8.2's own client-side cache enables tracking on every pooled connection too, from a
connect callback, and flushes its cache whenever any of them disconnects: their registrations
end with the socket, silently.) Here `Redirects.closed()` tells coherence when a connection it
relies on has closed; tracking then counts as lost.

    redirects = Redirects()
    redirects.publish({("127.0.0.1", 6379): 7})   # the listener's CLIENT ID on that server
    replies, tracked = await run_tracked(connection, redirects, [], ("GET", "sme:s:{a}"))
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

Address: TypeAlias = tuple[str, int] | str
Command: TypeAlias = tuple[Any, ...]
CACHING_YES: Command = ("CLIENT", "CACHING", "YES")


def address_of(connection: AbstractConnection) -> Address:
    """Which server `connection` talks to: a unix socket's path, else (host, port)."""
    path = getattr(connection, "path", None)
    if path:
        return str(path)
    return str(getattr(connection, "host", "")), int(getattr(connection, "port", 0))


class Redirects:
    """The invalidation listeners in force (one per server, by address) and the data connections
    that redirect their invalidations to them."""

    def __init__(self) -> None:
        # Bumped whenever the listeners change: connections enabled before must enable again.
        self.generation = 0
        self._listeners: dict[Address, int] = {}
        # id(connection) -> (connection, its socket when tracking was enabled on it)
        self._enabled: dict[int, tuple[AbstractConnection, object]] = {}

    @property
    def active(self) -> bool:
        return bool(self._listeners)

    def publish(self, listeners: Mapping[Address, int]) -> None:
        """New listeners are subscribed: from now on connections redirect to them."""
        self.generation += 1
        self._listeners = dict(listeners)
        self._enabled = {}

    def withdraw(self) -> None:
        """The listeners are gone: nothing read from now on is tracked."""
        self.generation += 1
        self._listeners = {}
        self._enabled = {}

    def target(self, connection: AbstractConnection) -> int | None:
        """The listener's CLIENT ID on `connection`'s server; None if none listens there."""
        return self._listeners.get(address_of(connection)) if self._listeners else None

    def enabled(self, connection: AbstractConnection) -> bool:
        """Whether tracking is on for `connection`'s current socket, redirected to a listener
        of this generation."""
        entry = self._enabled.get(id(connection))
        return entry is not None and entry[0] is connection and entry[1] is _socket(connection)

    def mark_enabled(self, connection: AbstractConnection) -> None:
        self._enabled[id(connection)] = (connection, _socket(connection))

    def closed(self) -> int:
        """How many tracking connections lost their socket (and with it, silently, every key
        Redis tracked for them) since tracking was enabled on them."""
        return sum(1 for connection, socket in self._enabled.values() if _lost(connection, socket))

    @property
    def connections(self) -> int:
        """Data connections that track for the current listeners (diagnostics and tests)."""
        return len(self._enabled)


def _socket(connection: AbstractConnection) -> object:
    return getattr(connection, "_writer", None)


def _lost(connection: AbstractConnection, socket: object) -> bool:
    if socket is None or _socket(connection) is not socket:
        return True  # disconnected (redis-py drops its writer), or reconnected since
    reader = getattr(connection, "_reader", None)
    # The peer's close reaches the stream's reader at once, even while nobody reads it.
    return bool(socket.is_closing() or reader is None or reader.at_eof())  # type: ignore[attr-defined]


async def run_tracked(
    connection: AbstractConnection,
    redirects: Redirects,
    commands: Sequence[Command],
    read: Command | None,
) -> tuple[list[Any], bool]:
    """Run `commands`, then `read`, on `connection` in one round trip; `read` registered with
    Redis's tracking when a listener serves this server. Returns the replies (to `commands`, then
    `read`) and whether `read`'s keys are tracked for this replica. A Redis error reply is raised
    after every reply was read; any other failure closes the connection (its replies are lost)."""
    await connection.connect()  # type: ignore[no-untyped-call]
    generation = redirects.generation
    target = redirects.target(connection)
    enable = target is not None and not redirects.enabled(connection)
    tracked = target is not None and read is not None
    pipeline: list[Command] = []
    if enable:
        pipeline.append(("CLIENT", "TRACKING", "ON", "REDIRECT", target, "OPTIN", "NOLOOP"))
    pipeline.extend(commands)
    if read is not None:
        if tracked:
            pipeline.append(CACHING_YES)
        pipeline.append(read)
    replies = await _round_trip(connection, pipeline)
    if enable:
        enabled = not isinstance(replies.pop(0), ResponseError)
        tracked = tracked and enabled
        if enabled and generation == redirects.generation:
            redirects.mark_enabled(connection)
    if read is not None and target is not None:
        caching = replies.pop(-2)
        tracked = tracked and not isinstance(caching, ResponseError)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies, tracked and generation == redirects.generation


async def _round_trip(connection: AbstractConnection, pipeline: list[Command]) -> list[Any]:
    """Send every command, read every reply (Redis errors as values). Any other failure, or a
    cancellation, leaves replies unread on the socket: the connection is closed then."""
    try:
        await connection.send_packed_command(connection.pack_commands(pipeline))
        replies: list[Any] = []
        for _ in pipeline:
            try:
                replies.append(await connection.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.disconnect(nowait=True)
        raise
