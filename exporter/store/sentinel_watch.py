"""Hear Sentinel move the master, at once, and tell the store (`TieredStore.master_switched`).

The data client's pooled connections keep talking to the old master after a failover: it still
acknowledges writes until Sentinel turns it into a replica (up to ~10 s later), and its full
resync then deletes them. So this watcher subscribes to `+switch-master` on every sentinel (the
first to announce it wins; the others' announcements of the same address are ignored) and, in case
a message is missed, asks the sentinels for the master every `interval` seconds. On a switch the
store stops writing to the old master, drops its connections and re-sends the last writes to the
new one (see `recovery.Recovery.master_switched`).

    watch = SentinelWatch(deployment, store)
    await watch.start()
    ...
    await watch.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.store.redis_client import RedisDeployment

log = logging.getLogger(__name__)

CHANNEL = "+switch-master"
POLL_INTERVAL = 5.0

Switched = Callable[[str], Awaitable[None]]


def parse_switch(message: str) -> tuple[str, tuple[str, int]] | None:
    """`<master name> <old ip> <old port> <new ip> <new port>` -> (name, new address).

    >>> parse_switch("sessions 10.0.0.1 6379 10.0.0.2 6380")
    ('sessions', ('10.0.0.2', 6380))
    """
    parts = message.split()
    if len(parts) != 5 or not parts[4].isdigit():
        return None
    return parts[0], (parts[3], int(parts[4]))


class SentinelWatch:
    def __init__(
        self,
        deployment: RedisDeployment,
        on_switch: Switched,
        *,
        retry_interval: float = 0.5,
        poll_interval: float = POLL_INTERVAL,
        timeout: float = 1.0,
    ) -> None:
        assert deployment.sentinel is not None and deployment.target.master is not None
        self.sentinel = deployment.sentinel
        self.master = deployment.target.master
        self.on_switch = on_switch
        self.retry_interval = retry_interval
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.address: tuple[str, int] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(self.timeout):
                self.address = await self.sentinel.discover_master(self.master)
        self._tasks = [
            asyncio.create_task(self._subscribe(sentinel), name="sentinel-switch")
            for sentinel in self.sentinel.sentinels
        ]
        self._tasks.append(asyncio.create_task(self._poll(), name="sentinel-poll"))

    async def close(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()

    async def _subscribe(self, sentinel: Redis) -> None:
        """Listen on one sentinel; reconnect after a retry interval when its connection ends."""
        # Its own client: the sentinel clients' short read timeout would end a quiet
        # subscription (a dead sentinel closes the socket; a hung one is what polling covers).
        pool = sentinel.connection_pool
        listener = Redis(
            connection_pool=ConnectionPool(
                connection_class=pool.connection_class,
                **{**pool.connection_kwargs, "socket_timeout": None},
            )
        )
        try:
            await self._listen(listener)
        finally:
            await listener.aclose(close_connection_pool=True)

    async def _listen(self, listener: Redis) -> None:
        while True:
            raise_if_cancelled()
            pubsub = listener.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._announced(message["data"])
            except (RedisError, OSError) as exc:
                log.debug("sentinel subscription ended: %s", type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(self.retry_interval)

    async def _announced(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        switch = parse_switch(text)
        if switch is not None and switch[0] == self.master:
            self.sentinel.view.announced(switch[1])  # no connection to another from now
            await self._moved(switch[1], "announced by a sentinel")

    async def _poll(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.poll_interval)
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(self.timeout):
                    address = await self.sentinel.discover_master(self.master)
                await self._moved(address, "seen by asking the sentinels")

    async def _moved(self, address: tuple[str, int], how: str) -> None:
        if self.address is None:
            self.address = address  # nothing known before: nothing moved
            return
        if address == self.address:
            return
        old, self.address = self.address, address
        await self.on_switch(f"{old[0]}:{old[1]} -> {address[0]}:{address[1]}, {how}")
