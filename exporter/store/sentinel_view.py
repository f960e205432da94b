"""Which server is the Sentinel master now, judged from every sentinel's answer.

Right after a failover the sentinels learn of it one by one (gossip every 2 s). The one that ran
it has a newer configuration (a higher `config-epoch`): its answer wins. And once a sentinel
has *announced* the switch (`+switch-master`, heard by `SentinelWatch`), an answer naming
another server counts only if its configuration is newer than the announced master's, as some
sentinel reports it: before any does, none counts. A busy leader that does not answer in time
must not let the others' old answer send writes back to the old master (it still acknowledges
them until it is turned into a replica, and its resync then deletes them); nor may the leader's
own answer sent just before the switch, which names the old master with the *new* epoch (Redis
updates the epoch when the replica takes over, the address when it announces the switch). No
answer is then better than a stale one: the caller retries.

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
    """The last switch announced (with its master's configuration epoch, once a sentinel has
    named it), and the last decision."""

    switch: tuple[Address, int | None] | None = None
    current: Address | None = None  # the last decision: an answer chosen, or a switch heard

    def announced(self, address: Address) -> None:
        self.switch = (address, None)
        self.current = address

    def choose(self, states: Sequence[MasterState]) -> Address | None:
        """The master the newest acceptable answer names, or None when none is acceptable."""
        if self.switch is not None:
            states = self._after_switch(states, *self.switch)
        if not states:
            return None
        self.current = _address(max(states, key=_epoch))
        return self.current

    def _after_switch(
        self, states: Sequence[MasterState], announced: Address, epoch: int | None
    ) -> list[MasterState]:
        for state in states:
            if _address(state) == announced:
                epoch = max(_epoch(state), -1 if epoch is None else epoch)
        self.switch = (announced, epoch)
        return [
            state
            for state in states
            if _address(state) == announced or (epoch is not None and _epoch(state) > epoch)
        ]
