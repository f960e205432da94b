"""Which server is the Sentinel master now, judged from every sentinel's answer.

Right after a failover the sentinels learn of it one by one (gossip every 2 s). The one that ran
it has a newer configuration (a higher `config-epoch`): its answer wins. And once a sentinel
has *announced* the switch (`+switch-master`, heard by `SentinelWatch`), an answer naming
another server is stale unless its configuration is newer than any seen before the
announcement: a busy leader that does not answer in time must not let the others' old answer
send writes back to the old master (it still acknowledges them until it is turned into a
replica, and its resync then deletes them). No answer is then better than a stale one: the
caller retries.

    >>> old = {"ip": "10.0.0.1", "port": "6379", "config-epoch": "3"}
    >>> new = {"ip": "10.0.0.2", "port": "6379", "config-epoch": "4"}
    >>> view = MasterView()
    >>> view.choose([old, new])
    ('10.0.0.2', 6379)
    >>> view = MasterView()
    >>> view.choose([old])
    ('10.0.0.1', 6379)
    >>> view.announced(("10.0.0.2", 6379))
    >>> view.choose([old]) is None  # only the sentinels that have not heard of it yet answer
    True
    >>> view.choose([old, new])
    ('10.0.0.2', 6379)

A connection to the master is made in two steps: ask (`choose`), then connect and check `ROLE`.
A switch announced in between makes the answer stale, and the old master still says `master`:
`current` is the master as decided last, which the connection checks once connected.

    >>> view.current
    ('10.0.0.2', 6379)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Address = tuple[str, int]
# `SENTINEL MASTER <name>` as redis-py parses it (`ip`, `port`, `config-epoch`, flags...).
MasterState = Mapping[str, Any]


def _address(state: MasterState) -> Address:
    return str(state["ip"]), int(state["port"])


def _epoch(state: MasterState) -> int:
    return int(state.get("config-epoch", 0))


@dataclass(slots=True)
class MasterView:
    """The newest configuration seen, and the last switch announced (with the newest
    configuration seen when it was heard)."""

    epoch_seen: int = -1
    switch: tuple[Address, int] | None = None
    current: Address | None = None  # the last decision: an answer chosen, or a switch heard

    def announced(self, address: Address) -> None:
        self.switch = (address, self.epoch_seen)
        self.current = address

    def choose(self, states: Sequence[MasterState]) -> Address | None:
        """The master the newest acceptable answer names, or None when none is acceptable."""
        if self.switch is not None:
            announced, before = self.switch
            states = [s for s in states if _address(s) == announced or _epoch(s) > before]
        if not states:
            return None
        newest = max(states, key=_epoch)
        self.epoch_seen = max(self.epoch_seen, _epoch(newest))
        self.current = _address(newest)
        return self.current
