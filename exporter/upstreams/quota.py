"""How much of Figma's per-minute rate limits this replica has spent, per tier: pure bookkeeping,
its clock passed in.

Figma counts requests per token and per rate-limit tier, per minute, and says nothing about what
is left until it answers 429. So the budget is ours: Figma's documented lowest per-minute limits
for Dev and Full seats (its rate-limit page, in force since November 2025: Tier 1 — files, nodes,
images — 10 to 20 a minute; Tier 2 — file metadata — 25 to 100; Tier 3 — /v1/me — 50 to 150).
A tier is *short* when it answered 429 within the last minute (or is still locked out), or when
this replica spent `LOW_SHARE` of its budget in the last minute. The Figma cache then serves copies
within their stale bound instead of spending the tier (`exporter.upstreams.freshness`). Several
replicas on one token each count only their own calls: the 429 memory covers the rest.

    >>> quota = TierQuota({1: 10})
    >>> for second in range(8):
    ...     quota.spend(1, now=float(second))
    >>> quota.shortage(1, now=8.0).reason, quota.shortage(1, now=70.0)
    ('budget', None)
    >>> quota.note_rate_limited(1, now=100.0)
    >>> quota.shortage(1, now=130.0).reason
    'rate_limited'
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

WINDOW_SECONDS = 60.0  # Figma's limits are per minute
LOW_SHARE = 0.8
# Figma's lowest documented per-minute limits for Dev and Full seats, per tier.
FIGMA_TIER_BUDGETS = {1: 10, 2: 25, 3: 50}
MAX_REMEMBERED = 10_000  # calls remembered per tier: far more than any Figma limit per minute

ShortageReason = Literal["rate_limited", "budget"]


@dataclass(frozen=True, slots=True)
class Shortage:
    """Why `tier` should not be spent now, with the numbers behind it."""

    tier: int
    reason: ShortageReason
    spent: int  # calls this replica made to the tier in the last minute
    budget: int
    seconds_since_429: float | None

    def describe(self) -> str:
        if self.reason == "rate_limited" and self.seconds_since_429 is not None:
            return f"Figma Tier {self.tier} answered 429 {self.seconds_since_429:.0f} s ago"
        return (
            f"Figma Tier {self.tier}: {self.spent} of a budget of {self.budget} calls spent in"
            " the last minute"
        )


class TierQuota:
    """Calls per tier over the last minute, and each tier's last 429."""

    def __init__(self, budgets: dict[int, int] | None = None) -> None:
        self.budgets = dict(FIGMA_TIER_BUDGETS if budgets is None else budgets)
        self._calls: dict[int, deque[float]] = {}
        self._last_429: dict[int, float] = {}
        self._locked_until: dict[int, float] = {}

    def spend(self, tier: int, now: float) -> None:
        """One request of `tier` reached Figma at `now`."""
        self._calls.setdefault(tier, deque(maxlen=MAX_REMEMBERED)).append(now)

    def note_rate_limited(self, tier: int, now: float, until: float | None = None) -> None:
        """`tier` answered 429 at `now` (locked out until `until`, when Figma said so)."""
        self._last_429[tier] = now
        if until is not None:
            self._locked_until[tier] = max(until, self._locked_until.get(tier, 0.0))

    def spent(self, tier: int, now: float) -> int:
        calls = self._calls.get(tier)
        if not calls:
            return 0
        while calls and calls[0] <= now - WINDOW_SECONDS:
            calls.popleft()
        return len(calls)

    def shortage(self, tier: int, now: float) -> Shortage | None:
        """Why `tier` is short now, or None."""
        spent = self.spent(tier, now)
        budget = self.budgets.get(tier, 0)
        last = self._last_429.get(tier)
        since = now - last if last is not None else None
        locked = self._locked_until.get(tier, 0.0) > now
        if locked or (since is not None and since < WINDOW_SECONDS):
            return Shortage(tier, "rate_limited", spent, budget, since)
        if budget and spent >= budget * LOW_SHARE:
            return Shortage(tier, "budget", spent, budget, since)
        return None
