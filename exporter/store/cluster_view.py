"""Which Redis Cluster nodes own the slots now, judged from several nodes' `CLUSTER NODES`.

One node's view can be stale: a master restarted after its replica was promoted comes back still
claiming its slots until gossip tells it of the newer config epoch. redis-py refreshes its
topology from one random node, so coherence, asking it for the primaries, could track that stale
node and hear nothing of the writes the promoted one takes. Redis Cluster settles a conflict by
config epoch (the higher claim wins); so do we, over every view we could read.

    >>> old = {"10.0.0.1:7000": {"flags": "myself,master", "epoch": "1", "slots": [["0", "99"]]}}
    >>> new = {"10.0.0.2:7000": {"flags": "myself,master", "epoch": "4", "slots": [["0", "99"]]}}
    >>> newest_slot_owners([old, new])
    ['10.0.0.2:7000']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

# A `CLUSTER NODES` reply as redis-py parses it: address -> {"flags", "epoch", "slots", ...}.
NodesView = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Claim:
    address: str
    epoch: int
    first: int
    last: int

    def overlaps(self, other: Claim) -> bool:
        return self.first <= other.last and other.first <= self.last


def newest_slot_owners(views: Iterable[NodesView]) -> list[str]:
    """The addresses of the masters whose slot claims no newer claim overrides, sorted. A master
    flagged `fail` still owns its slots until a replica's newer claim takes them: coherence must
    keep failing to track it (memory bypassed), not track the others and leave a hole."""
    claims = [claim for view in views for claim in _claims(view)]
    # Slot ranges between consecutive claim boundaries are claimed as a whole by each claim.
    starts = sorted({c.first for c in claims} | {c.last + 1 for c in claims})
    owners: set[str] = set()
    for first, after in pairwise(starts):
        piece = Claim("", 0, first, after - 1)
        covering = [c for c in claims if c.overlaps(piece)]
        if covering:
            newest = max(c.epoch for c in covering)
            owners.update(c.address for c in covering if c.epoch == newest)
    return sorted(owners)


def _claims(view: NodesView) -> list[Claim]:
    claims = []
    for address, node in view.items():
        flags = str(node.get("flags", "")).split(",")
        if "master" not in flags:
            continue
        for slot_range in node.get("slots", []):
            first, last = int(slot_range[0]), int(slot_range[-1])
            claims.append(Claim(address, int(node.get("epoch", 0)), first, last))
    return claims
