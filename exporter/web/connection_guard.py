"""Who may hold a connection: caps per client address and in total, and who makes room.

Pure bookkeeping (no sockets, no clock of its own): `exporter.web.server` tells it when a
connection opens, starts or finishes a request, and closes, and acts on its decisions.

- A client address (IP) may hold `max_per_client` connections; one more is refused.
- At `max_connections` in total, a new connection replaces the one that has been *waiting*
  longest (idle between requests, or still sending its request head: a slow-loris holds its
  connections in that state) and is refused only when every connection is busy with a request.
  A normal client sends its head in one packet, so it is never the one waiting longest, and a
  flood of slow connections cannot keep it out.

    >>> guard = ConnectionGuard[str](max_connections=2, max_per_client=5)
    >>> guard.admit("a", "10.0.0.1").admitted, guard.admit("b", "10.0.0.2").admitted
    (True, True)
    >>> guard.admit("c", "10.0.0.3")  # full: the longest-waiting one makes room
    Admission(admitted=True, evict='a', reason='total_limit')
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
    """Open connections by client address, and the waiting ones in the order they began to wait."""

    def __init__(self, *, max_connections: int, max_per_client: int) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client  # 0: no limit
        self._address: dict[C, str] = {}
        self._per_client: Counter[str] = Counter()
        self._waiting: OrderedDict[C, None] = OrderedDict()  # longest waiting first

    @property
    def open(self) -> int:
        return len(self._address)

    def admit(self, connection: C, address: str) -> Admission[C]:
        """Decide on a new connection; if admitted it counts as waiting from now on."""
        if self.max_per_client and self._per_client[address] >= self.max_per_client:
            return Admission(False, reason="client_limit")
        evict: C | None = None
        if self.open >= self.max_connections:
            if not self._waiting:
                return Admission(False, reason="total_limit")
            evict = next(iter(self._waiting))
            self.closed(evict)
        self._address[connection] = address
        self._per_client[address] += 1
        self._waiting[connection] = None
        return Admission(True, evict, "total_limit" if evict is not None else None)

    def busy(self, connection: C) -> None:
        """A request head arrived: not a candidate to make room until it is answered."""
        self._waiting.pop(connection, None)

    def waiting(self, connection: C) -> None:
        """Idle again (answered, waiting for the next request) from now on."""
        if connection in self._address and connection not in self._waiting:
            self._waiting[connection] = None

    def closed(self, connection: C) -> None:
        address = self._address.pop(connection, None)
        self._waiting.pop(connection, None)
        if address is not None:
            self._per_client[address] -= 1
            if self._per_client[address] <= 0:
                del self._per_client[address]
