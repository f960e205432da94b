"""In-process stand-ins for what recovery talks to: one Redis as the fleet's records and the
version-checked replay see it (the same checks as the Lua scripts), and the memory tier."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from exporter.core.errors import StoreUnavailable, WritesRefused
from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.fleet import Epoch, Member
from exporter.store.redis_store import FleetSnapshot

T = TypeVar("T")
FAR = 10**10  # an expiry far in the future


class Server:
    """One Redis as recovery sees it: versioned values and tombstones, the marker, the records."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[int, bytes | None]] = {}  # None: a tombstone
        self.marker: bytes | None = None
        self.members: dict[str, bytes] = {}
        self.run_id = "run-1"
        self.up = True
        self.refusing = False
        self.landing: asyncio.Event | None = None  # if given: records land once it is set

    def restart_empty(self) -> None:
        self.data.clear()
        self.members.clear()
        self.marker = None
        self.run_id += "'"

    def flushall(self) -> None:
        self.data.clear()
        self.members.clear()
        self.marker = None

    def value(self, key: str) -> bytes | None:
        held = self.data.get(key)
        return None if held is None else held[1]


class FleetRedisDouble:
    """`recovery.FleetRedis` on a `Server`; unreachable while `server.up` is False."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.views = 0  # fleet_view calls (a miss while this replica knows Redis refuses writes)
        self.syncs = 0  # fleet_sync calls: what the misses waiting together share

    def _check(self, write: bool = False) -> Server:
        if not self.server.up:
            raise StoreUnavailable("Redis unavailable (ConnectionError)")
        if write and self.server.refusing:
            raise WritesRefused("oom")
        return self.server

    async def ping(self) -> float:
        self._check()
        return 0.1

    async def reset_connections(self, *, in_use: bool = False) -> None:
        pass

    async def probe_write(self) -> None:
        self._check(write=True)

    async def replay(self, items: Sequence[ReplayItem]) -> list[bool]:
        server = self._check(write=True)
        written = []
        for item in items:
            current = server.data.get(item.key)
            if item.value is None:  # a delete always wins
                done = current is None or current[1] is not None
                server.data[item.key] = (item.version, None)
            else:
                done = current is None or (current[1] is not None and item.version > current[0])
                if done:
                    server.data[item.key] = (item.version, item.value.payload)
            written.append(done)
        return written

    async def fleet_sync(self, replica: str, record: Member | None) -> FleetSnapshot:
        self.syncs += 1
        server = self._check(write=record is not None)
        if record is not None:
            if server.landing is not None:
                await server.landing.wait()
            server.members[replica] = record.encode()
        members = {name: Member.decode(raw) for name, raw in server.members.items()}
        return FleetSnapshot(Epoch.decode(server.marker), members, server.run_id, 0.0, 0.0, 0.0)

    async def fleet_view(self) -> tuple[Epoch | None, dict[str, Member | None]]:
        self.views += 1
        server = self._check()
        members = {name: Member.decode(raw) for name, raw in server.members.items()}
        return Epoch.decode(server.marker), members

    async def begin_epoch(self, expected: Epoch | None, new: Epoch) -> Epoch | None:
        server = self._check(write=True)
        if server.marker == (expected.encode() if expected else None):
            server.marker = new.encode()
        return Epoch.decode(server.marker)

    async def leave_fleet(self, *replicas: str) -> None:
        for replica in replicas:
            self._check(write=True).members.pop(replica, None)


class Memory:
    """`recovery.StoreSide`: a memory tier as a dict."""

    def __init__(self) -> None:
        self.held: dict[str, StoredValue] = {}
        self.flushes = 0

    async def redis_call(self, command: Callable[[], Awaitable[T]]) -> T:
        return await command()

    def held_sessions(self) -> list[ReplayItem]:
        return [ReplayItem(k, v.version, v.expires_at, v) for k, v in self.held.items()]

    def flush_memory(self, reason: str, *, keep_for_reseed: bool = True) -> int:
        count, self.flushes = len(self.held), self.flushes + 1
        self.held.clear()
        return count

    def replayed(self, item: ReplayItem, written: bool) -> None:
        if not written:
            self.held.pop(item.key, None)

    def expect_echoes(self, items: list[ReplayItem]) -> list[bool]:
        return [False] * len(items)

    def echoes_missed(
        self, items: list[ReplayItem], expected: list[bool], sent: list[bool]
    ) -> None:
        pass

    def fallback_changed(self) -> None:
        pass
