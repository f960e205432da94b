"""The writes Redis acknowledged in the last seconds, kept to be sent again after a master switch.

A Sentinel promotes a replica before it tells anyone: writes the old master acknowledged in
between (and until this replica hears of the switch) never reach the new master, and the old
one drops them when it is turned into a replica (a full resync). So every acknowledged write is
remembered for `window` seconds, latest per key; on a switch they are replayed to the new master
with the journal's version checks (a newer write or a delete there always wins). Pure: the clock
is passed in, no I/O.

    >>> now = [0.0]
    >>> recent = RecentWrites(window=10.0, clock=lambda: now[0])
    >>> recent.add(ReplayItem("s:{a}", 1, 60.0, None)); now[0] = 11.0
    >>> recent.add(ReplayItem("s:{b}", 2, 60.0, None))
    >>> [item.key for item in recent.snapshot()]
    ['s:{b}']
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from exporter.store.contract import ReplayItem


class RecentWrites:
    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, ReplayItem]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: ReplayItem) -> None:
        now = self._clock()
        self._items.pop(item.key, None)
        self._items[item.key] = (now, item)
        self._trim(now)

    def snapshot(self) -> list[ReplayItem]:
        """Every write acknowledged within the window, oldest first."""
        self._trim(self._clock())
        return [item for _, item in self._items.values()]

    def _trim(self, now: float) -> None:
        items = self._items
        while items:
            written, _ = next(iter(items.values()))
            if now - written < self.window:
                return
            items.popitem(last=False)
