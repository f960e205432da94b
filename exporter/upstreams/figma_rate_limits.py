"""Figma's rate limits as its docs state them: which tier each endpoint is in, and a remembered
429 lockout (`RateLimit`) with the headers that describe it, kept to a bounded set of values.

    >>> ENDPOINT_TIERS["meta"], DATA_TIER
    (2, 1)
    >>> [bounded_header(value, PLAN_TIERS) for value in ("Pro", "gold", None)]
    ['pro', 'other', 'unknown']
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

# Figma's rate-limit tiers (its docs): files, nodes and images are Tier 1, file metadata Tier 2,
# /v1/me Tier 3. Image downloads go to pre-signed storage URLs, outside Figma's limits.
ENDPOINT_TIERS = {"files": 1, "nodes": 1, "images": 1, "meta": 2, "me": 3}
DATA_TIER = 1
DATA_ENDPOINTS = ("files", "nodes", "images")
# Values of X-Figma-Rate-Limit-Type and X-Figma-Plan-Tier kept as they are; others are "other".
RATE_LIMIT_TYPES = ("low", "high")
PLAN_TIERS = ("enterprise", "org", "pro", "starter", "student")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A remembered 429: calls of `tier` wait until `until` (Unix time)."""

    tier: int
    endpoint: str
    until: float
    retry_after: float
    limit_type: str  # in RATE_LIMIT_TYPES, "other" or "unknown"
    plan_tier: str  # in PLAN_TIERS, "other" or "unknown"

    def remaining(self, now: float) -> float:
        return max(0.0, self.until - now)

    def describe(self, now: float) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.until))
        return (
            f"Figma API rate limited until {when} (limit type {self.limit_type},"
            f" plan tier {self.plan_tier}); retry after {self.remaining(now):.0f} s"
        )

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "until": self.until,
            "retry_after": round(self.remaining(now), 3),
            "endpoint": self.endpoint,
            "tier": self.tier,
            "limit_type": self.limit_type,
            "plan_tier": self.plan_tier,
        }


def bounded_header(value: str | None, known: tuple[str, ...]) -> str:
    """A header value as a bounded JSON field: a known value, `other`, or `unknown` if absent."""
    if not value:
        return "unknown"
    text = value.strip().lower()
    return text if text in known else "other"
