"""When a cached Figma copy may be served, and what to ask Figma first: a pure decision.

A file's cached copies (the document, its nodes, rendered images) are keyed to the file version
they came from, so a copy is never wrong for its version: the only question is whether the version
is still the file's current one. A `VersionRecord` says which version was current when it was last
verified (by a full download or by `GET /v1/files/:key/meta`). Its age decides:

- younger than the TTL: `fresh`, serve the copy;
- older, but within the stale bound (`stale_seconds` past the TTL): serve the copy at once and
  revalidate in the background (`stale`), or, when Figma's quota is short, serve it without
  asking at all (`hold`);
- older than that, or no record: the reader waits for a revalidation (`wait`).

With revalidation off (the old fixed-TTL cache, kept for the benchmark's baseline and for tokens
without the `file_metadata:read` scope), an expired record is simply gone (`wait`, then a full
download).

    >>> policy = FreshnessPolicy(ttl=60, stale_seconds=30)
    >>> [decide(VersionRecord("7", verified_at=0), now, policy, quota_short=False)
    ...  for now in (10, 70, 100)]
    ['fresh', 'stale', 'wait']
    >>> decide(VersionRecord("7", verified_at=0), 70, policy, quota_short=True)
    'hold'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Freshness = Literal["fresh", "stale", "hold", "wait"]


@dataclass(frozen=True, slots=True)
class FreshnessPolicy:
    """`ttl`: seconds a verified version is used without asking; `stale_seconds`: how far past
    the TTL a copy may still be served while revalidating (or while the quota is short)."""

    ttl: float
    stale_seconds: float
    revalidate: bool = True

    @property
    def bound(self) -> float:
        """The oldest a verification may be when its copy is served: the worst staleness."""
        return self.ttl + self.stale_seconds if self.revalidate else self.ttl


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """The version of one file as last verified, at `verified_at` (the fleet clock's seconds)."""

    version: str
    verified_at: float

    def age(self, now: float) -> float:
        # A record from a replica whose clock runs ahead counts as just verified, never younger.
        return max(0.0, now - self.verified_at)


def decide(
    record: VersionRecord | None, now: float, policy: FreshnessPolicy, *, quota_short: bool
) -> Freshness:
    """What a read of a file's copy does now; see the module docstring."""
    if record is None:
        return "wait"
    age = record.age(now)
    if age < policy.ttl:
        return "fresh"
    if not policy.revalidate or age >= policy.bound:
        return "wait"
    return "hold" if quota_short else "stale"
