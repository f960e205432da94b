"""What the Figma cache's own numbers say to change: a pure function from observations to advice.

Each piece of advice names the setting to change (if any), its current and suggested values, and
the observed numbers behind it, so `/api/session-metrics/cache-stats` shows why, not only what.
Suggestions need `MIN_SAMPLE` revalidations (or reads) first: a handful says nothing.

    >>> seen = Observations(ttl=300.0, stale_seconds=60.0, unchanged=95, changed=5)
    >>> [a.code for a in advise(seen)]
    ['revalidation_savings', 'raise_ttl']
    >>> advise(seen)[1].suggested
    600.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

AdviceCode = Literal[
    "revalidation_savings",
    "raise_ttl",
    "lower_ttl",
    "raise_stale_seconds",
    "raise_cache_bytes",
    "grant_metadata_scope",
    "revalidation_failures",
    "quota_hold",
]
ADVICE_CODES: tuple[AdviceCode, ...] = get_args(AdviceCode)
MIN_SAMPLE = 20
UNCHANGED_SHARE_HIGH = 0.9  # almost every expiry found the file unchanged: the TTL can grow
CHANGED_SHARE_HIGH = 0.5  # most expiries found a change: copies go out of date within a TTL
MAX_SUGGESTED_TTL = 3600.0
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Observations:
    """The Figma cache's settings and counts since start."""

    ttl: float
    stale_seconds: float
    unchanged: int = 0
    changed: int = 0
    failed: int = 0
    waited: int = 0
    downloads_avoided: int = 0
    bytes_saved: int = 0
    stale_quota: int = 0
    evicted_early: int = 0
    evicted_early_bytes: int = 0
    budget_bytes: int = 0
    revalidation_refused: bool = False
    last_failure: str | None = None
    quota_short: str | None = None

    @property
    def revalidated(self) -> int:
        return self.unchanged + self.changed

    @property
    def unchanged_share(self) -> float | None:
        return self.unchanged / self.revalidated if self.revalidated else None


@dataclass(frozen=True, slots=True)
class Advice:
    code: AdviceCode
    message: str
    setting: str | None = None
    current: float | None = None
    suggested: float | None = None
    observed: dict[str, float] = field(default_factory=dict)


def advise(seen: Observations) -> list[Advice]:
    """Every piece of advice that applies, most useful first."""
    found = [
        _savings(seen),
        _ttl(seen),
        _stale(seen),
        _budget(seen),
        _scope(seen),
        _failures(seen),
        _quota(seen),
    ]
    return [advice for advice in found if advice is not None]


def _savings(seen: Observations) -> Advice | None:
    if not seen.revalidated:
        return None
    share = seen.unchanged_share or 0.0
    return Advice(
        "revalidation_savings",
        f"{seen.revalidated} expired files were revalidated with /meta: {share:.0%} unchanged,"
        f" so {seen.downloads_avoided} full downloads ({_size(seen.bytes_saved)}) were avoided",
        observed={
            "unchanged": seen.unchanged,
            "changed": seen.changed,
            "unchanged_share": round(share, 4),
            "downloads_avoided": seen.downloads_avoided,
            "bytes_saved": seen.bytes_saved,
        },
    )


def _ttl(seen: Observations) -> Advice | None:
    share = seen.unchanged_share
    if share is None or seen.revalidated < MIN_SAMPLE:
        return None
    observed = {"revalidations": seen.revalidated, "unchanged_share": round(share, 4)}
    if share >= UNCHANGED_SHARE_HIGH and seen.ttl < MAX_SUGGESTED_TTL:
        suggested = min(seen.ttl * 2, MAX_SUGGESTED_TTL)
        return Advice(
            "raise_ttl",
            f"{share:.0%} of expired files were unchanged: a TTL of {suggested:g} s makes about"
            f" {1 - seen.ttl / suggested:.0%} fewer /meta calls; copies may then be up to"
            f" {suggested + seen.stale_seconds:g} s out of date",
            "--figma-cache-ttl",
            seen.ttl,
            suggested,
            observed,
        )
    if 1 - share >= CHANGED_SHARE_HIGH:
        suggested = max(seen.ttl / 2, 1.0)
        return Advice(
            "lower_ttl",
            f"{1 - share:.0%} of expired files had changed: copies often go out of date within"
            f" the TTL; a TTL of {suggested:g} s serves fresher copies for more /meta calls",
            "--figma-cache-ttl",
            seen.ttl,
            suggested,
            observed,
        )
    return None


def _stale(seen: Observations) -> Advice | None:
    if seen.waited < MIN_SAMPLE or seen.stale_seconds >= seen.ttl:
        return None
    return Advice(
        "raise_stale_seconds",
        f"{seen.waited} reads waited for a revalidation past the stale bound: with"
        f" --figma-cache-stale-seconds {seen.ttl:g} they are served at once and revalidated in"
        f" the background (copies up to {2 * seen.ttl:g} s out of date)",
        "--figma-cache-stale-seconds",
        seen.stale_seconds,
        seen.ttl,
        {"waited": seen.waited},
    )


def _budget(seen: Observations) -> Advice | None:
    if not seen.evicted_early or not seen.budget_bytes:
        return None
    grown = seen.budget_bytes + seen.evicted_early_bytes
    suggested = float(-(-grown // MIB) * MIB)  # whole MiB, rounded up
    return Advice(
        "raise_cache_bytes",
        f"{seen.evicted_early} cached Figma copies ({_size(seen.evicted_early_bytes)}) were"
        f" evicted by the byte budget before their time and downloaded again: a budget of"
        f" {_size(int(suggested))} would have kept them",
        "--figma-cache-max-bytes",
        float(seen.budget_bytes),
        suggested,
        {"evicted_early": seen.evicted_early, "evicted_early_bytes": seen.evicted_early_bytes},
    )


def _scope(seen: Observations) -> Advice | None:
    if not seen.revalidation_refused:
        return None
    return Advice(
        "grant_metadata_scope",
        "Figma refused GET /v1/files/:key/meta (403): expired copies are downloaded again in"
        " full; give the token the file_metadata:read scope",
        observed={"failed": seen.failed},
    )


def _failures(seen: Observations) -> Advice | None:
    if not seen.failed or seen.revalidation_refused:
        return None
    total = seen.failed + seen.revalidated
    return Advice(
        "revalidation_failures",
        f"{seen.failed} of {total} revalidations failed and were downloaded in full instead"
        f" (last: {seen.last_failure or 'unknown'})",
        observed={"failed": seen.failed, "revalidations": total},
    )


def _quota(seen: Observations) -> Advice | None:
    if not seen.stale_quota and seen.quota_short is None:
        return None
    now = f"; now: {seen.quota_short}" if seen.quota_short else ""
    return Advice(
        "quota_hold",
        f"{seen.stale_quota} reads were served past their TTL without asking Figma, because its"
        f" rate limits ran short{now}",
        observed={"stale_quota": seen.stale_quota},
    )


def _size(size: int) -> str:
    return f"{size / MIB:.1f} MiB" if size >= MIB else f"{size / 1024:.1f} KiB"
