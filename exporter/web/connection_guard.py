"""Who may hold a connection: caps per client address and in total, and who makes room.

Pure bookkeeping (no sockets, no clock): `exporter.web.request_handler` tells it when a
connection opens, starts or finishes a request, and closes, and acts on its decisions.

- A client address (IP) may hold `max_per_client` connections; one more is refused.
- At `max_connections` in total, room is taken from the address holding the most connections
  (the richest): its connection that has *waited* longest (idle between requests, or still
  sending its request head, as a slow-loris holds them) is closed, and the new one admitted.
  A new connection from an address that already holds the most is refused instead, unless that
  address is the only one (a reverse proxy or NAT in front: its longest-waiting connection makes
  room). So a flood from some addresses, slow or not, cannot keep any other address out, nor churn
  through its own connections (each of them would close another that then reconnects), and a
  connection busy with a request is never closed.

    >>> guard = ConnectionGuard[str](max_connections=3, max_per_client=0)
    >>> opened = [("a1", "10.0.0.1"), ("a2", "10.0.0.1"), ("b", "10.0.0.2")]
    >>> [guard.admit(connection, address).admitted for connection, address in opened]
    [True, True, True]
    >>> guard.admit("c", "10.0.0.3")  # full: the richest address's longest-waiting makes room
    Admission(admitted=True, evict='a1', reason='total_limit')
    >>> guard.admit("a3", "10.0.0.1").admitted  # a flooding address gets no more
    False
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)
AUTO_MAX = 16_384
AUTO_SHARE = 0.75  # of the open-files limit; the rest stays for Redis, upstreams, the journal
MIN_CONNECTIONS = 64


@dataclass(frozen=True, slots=True)
class Admission(Generic[C]):
    admitted: bool
    evict: C | None = None  # to close first (it made room), reason `total_limit`
    reason: str | None = None  # why `evict` goes or why the new one is refused


def auto_max_connections(open_files_limit: int) -> int:
    """The default total cap: most of the descriptors the process may open, so that accepting
    never fails with EMFILE (which stops the accept loop, and Redis connections with it)."""
    return max(MIN_CONNECTIONS, min(AUTO_MAX, int(open_files_limit * AUTO_SHARE)))


class ConnectionGuard(Generic[C]):
    """Open connections by client address; per address, the waiting ones, longest-waiting first;
    addresses by how many connections they hold (to find the richest in O(1))."""

    def __init__(self, *, max_connections: int, max_per_client: int) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client  # 0: no limit
        self._address: dict[C, str] = {}
        self._count: Counter[str] = Counter()
        self._by_count: dict[int, set[str]] = {}
        self._most = 0
        self._waiting: dict[str, OrderedDict[C, None]] = {}

    @property
    def open(self) -> int:
        return len(self._address)

    def admit(self, connection: C, address: str) -> Admission[C]:
        """Decide on a new connection; if admitted it counts as waiting from now on."""
        held = self._count[address]
        if self.max_per_client and held >= self.max_per_client:
            return Admission(False, reason="client_limit")
        evict: C | None = None
        if self.open >= self.max_connections:
            evict = self._room_for(address, held)
            if evict is None:
                return Admission(False, reason="total_limit")
            self.closed(evict)
        self._address[connection] = address
        self._move(address, +1)
        self._waiting.setdefault(address, OrderedDict())[connection] = None
        return Admission(True, evict, "total_limit" if evict is not None else None)

    def _room_for(self, address: str, held: int) -> C | None:
        """The connection to close for a newcomer from `address`, or None to refuse it."""
        if held < self._most:  # another address holds more: take from the richest
            for richest in self._by_count[self._most]:
                if waiting := self._waiting.get(richest):
                    return next(iter(waiting))
            return None
        if len(self._count) == 1:  # everyone comes through one address (a proxy, a NAT)
            waiting = self._waiting.get(address)
            return next(iter(waiting)) if waiting else None
        return None

    def busy(self, connection: C) -> None:
        """A request head arrived: not a candidate to make room until it is answered."""
        address = self._address.get(connection)
        if address is not None:
            self._waiting[address].pop(connection, None)

    def waiting(self, connection: C) -> None:
        """Idle again (answered, waiting for the next request) from now on."""
        address = self._address.get(connection)
        if address is not None:
            self._waiting[address].setdefault(connection, None)

    def closed(self, connection: C) -> None:
        address = self._address.pop(connection, None)
        if address is None:
            return
        waiting = self._waiting[address]
        waiting.pop(connection, None)
        self._move(address, -1)
        if not self._count[address]:
            del self._count[address], self._waiting[address]

    def _move(self, address: str, step: int) -> None:
        """Count one connection more or less for `address`, keeping the buckets and the most."""
        before = self._count[address]
        after = before + step
        if before:
            bucket = self._by_count[before]
            bucket.discard(address)
            if not bucket:
                del self._by_count[before]
        if after:
            self._by_count.setdefault(after, set()).add(address)
        self._count[address] = after
        if after > self._most:
            self._most = after
        elif before == self._most and before not in self._by_count:
            self._most = after  # the only richest lost one: counts move by one
