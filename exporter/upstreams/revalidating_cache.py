"""Figma copies keyed to the file version they came from, revalidated with
`GET /v1/files/:key/meta` instead of downloaded again.

Per file, a `VersionRecord` (in the response cache too, so every replica shares it) says which
version was current when last verified. A document, its nodes and its rendered images are stored
under that version: an unchanged version is never downloaded or rendered twice. What a read does
is `freshness.decide`'s answer:

- `fresh`: the copy of the recorded version;
- `stale`: that copy at once, and a revalidation in the background (one per file at a time): an
  unchanged file extends the record, a changed one is downloaded again, still in the background;
- `hold` (Figma's quota is short, `quota.TierQuota`): that copy, without asking Figma;
- `wait`: the reader waits for the revalidation (single flight per file), then gets the copy of
  the current version, downloading it only when the file changed.

A failed revalidation falls back to a full download (the old behaviour); a 403 (a token without
the `file_metadata:read` scope) turns revalidation off for `META_REFUSED_SECONDS`.

    cache = RevalidatingCache(responses, FreshnessPolicy(ttl=300, stale_seconds=60), metrics,
                              flights, figma=client)
    document = await cache.read("FILEKEY", Content("file", ("depth=2",), decode_json, download))
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from exporter.core.errors import UpstreamError
from exporter.core.metrics import REVALIDATION_RESULTS, STALE_REASONS, Metrics
from exporter.upstreams.cache_advice import Observations
from exporter.upstreams.figma_client import FigmaClient
from exporter.upstreams.freshness import Freshness, FreshnessPolicy, VersionRecord, decide
from exporter.upstreams.quota import Shortage
from exporter.upstreams.response_cache import Entry, ResponseCache
from exporter.upstreams.single_flight import SingleFlight

log = logging.getLogger(__name__)

T = TypeVar("T")
# A copy whose file version is not known (a document without `version`, an image while /meta
# fails) is stored under this version for one TTL, as the fixed-TTL cache did.
UNVERSIONED = "-"
# Copies of a version never go wrong, only out of date: they stay while the version may still be
# current, at least an hour and twelve TTLs (the byte budget evicts the least used first).
RETAIN_TTLS = 12
MIN_RETENTION = 3600.0
META_REFUSED_SECONDS = 600.0
# The endpoints a revalidation may spend: /meta (Tier 2), then a download (Tier 1).
REVALIDATION_ENDPOINTS = ("meta", "files")
AVOIDED_KEYS_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Download(Generic[T]):
    """A fresh copy from Figma: the value, its stored form, and the file version it is of."""

    value: T
    payload: bytes
    version: str | None


@dataclass(frozen=True, slots=True)
class Content(Generic[T]):
    """One kind of copy of a file: `kind` and `parts` name it in the cache; `download(version)`
    fetches it (`version`: the file version verified just before, when known). `needs_version`:
    the answer does not say its version (rendered images), so a current one is verified first."""

    kind: str
    parts: tuple[str, ...]
    decode: Callable[[bytes], T]
    download: Callable[[str | None], Awaitable[Download[T]]]
    needs_version: bool = False


@dataclass(slots=True)
class RevalidationCounts:
    """What revalidation did since start (JSON; the metrics count the same)."""

    unchanged: int = 0
    changed: int = 0
    failed: int = 0
    waited: int = 0  # revalidations a reader waited for (past the stale bound)
    background: int = 0  # revalidations while a stale copy was served
    downloads_avoided: int = 0
    bytes_saved: int = 0
    meta_bytes: int = 0  # what the /meta answers cost
    stale_revalidating: int = 0
    stale_quota: int = 0
    last_failure: str | None = None


def decode_record(payload: bytes) -> VersionRecord:
    body = orjson.loads(payload)
    return VersionRecord(str(body["version"]), float(body["verified_at"]))


def version_of(document: dict[str, Any]) -> str | None:
    """The version a Figma file or nodes answer is of (`version`, else `lastModified`)."""
    version = document.get("version") or document.get("lastModified")
    return version if isinstance(version, str) and version else None


class RevalidatingCache:
    """The read path of Figma copies; see the module docstring."""

    def __init__(
        self,
        responses: ResponseCache,
        policy: FreshnessPolicy,
        metrics: Metrics,
        flights: SingleFlight,
        *,
        figma: FigmaClient | None = None,
    ) -> None:
        self.responses = responses
        self.policy = policy
        self.figma = figma
        self.clock = responses.clock
        self.retention = max(RETAIN_TTLS * policy.ttl, MIN_RETENTION, policy.bound)
        self.flights = flights  # downloads, shared with the manager's other calls
        self._revalidations = SingleFlight()  # one /meta per file at a time
        self._background: dict[str, asyncio.Task[None]] = {}
        self._avoided_at: OrderedDict[str, float] = OrderedDict()
        self._meta_refused_until = 0.0
        self.counts = RevalidationCounts()
        self._revalidated = {
            r: metrics.figma_cache_revalidations.labels(r) for r in REVALIDATION_RESULTS
        }
        self._stale = {r: metrics.figma_cache_stale_served.labels(r) for r in STALE_REASONS}
        self._avoided = metrics.figma_cache_downloads_avoided
        self._saved = metrics.figma_cache_saved_bytes

    # -- reads ------------------------------------------------------------------------------

    async def read(self, file_key: str, content: Content[T]) -> tuple[T, bool]:
        """The copy `content` of `file_key` and whether it came from the cache."""
        record = await self._record(file_key)
        shortage = self.quota_shortage()
        state = decide(record, self.clock(), self.policy, quota_short=shortage is not None)
        version = record.version if record is not None and state != "wait" else None
        if state == "wait" and (record is not None or content.needs_version):
            version = await self._revalidate(file_key, record, waited=record is not None)
            state = "fresh" if version is not None else "wait"
        entry = await self.responses.lookup(self._key(file_key, content, version), content.decode)
        if entry is not None:
            self._served(file_key, content, version, entry, state, record)
            return entry.value, True
        if state in ("stale", "hold") and content.needs_version and record is not None:
            # No copy of the recorded version: render the current one, not an old one.
            version = await self._revalidate(file_key, record, waited=True)
        return await self._fill(file_key, content, version), False

    def quota_shortage(self) -> Shortage | None:
        """Why Figma's quota is short for a revalidation now (Tier 1 or 2), if it is."""
        if self.figma is None or not self.policy.revalidate:
            return None
        return self.figma.quota_shortage(*REVALIDATION_ENDPOINTS)

    @property
    def revalidation_refused(self) -> bool:
        """Whether /meta refused this token (403) lately: expired copies are downloaded again."""
        return self._meta_refused_until > self.clock()

    def observations(self, budget_bytes: int) -> Observations:
        """What the cache-stats recommendations are computed from (`cache_advice.advise`)."""
        counts = self.counts
        shortage = self.quota_shortage()
        return Observations(
            ttl=self.policy.ttl,
            stale_seconds=self.policy.stale_seconds,
            unchanged=counts.unchanged,
            changed=counts.changed,
            failed=counts.failed,
            waited=counts.waited,
            downloads_avoided=counts.downloads_avoided,
            bytes_saved=counts.bytes_saved,
            stale_quota=counts.stale_quota,
            evicted_early=self.responses.lost,
            evicted_early_bytes=self.responses.lost_bytes,
            budget_bytes=budget_bytes,
            revalidation_refused=self.revalidation_refused,
            last_failure=counts.last_failure,
            quota_short=shortage.describe() if shortage is not None else None,
        )

    async def close(self) -> None:
        tasks = list(self._background.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._revalidations.cancel_all()

    # -- internals --------------------------------------------------------------------------

    def _key(self, file_key: str, content: Content[Any], version: str | None) -> str:
        return self.responses.key(content.kind, file_key, version or UNVERSIONED, *content.parts)

    def _record_key(self, file_key: str) -> str:
        return self.responses.key("version", file_key)

    async def _record(self, file_key: str) -> VersionRecord | None:
        return await self.responses.get(self._record_key(file_key), decode_record, counted=False)

    async def _remember(self, file_key: str, version: str) -> None:
        record = VersionRecord(version, self.clock())
        payload = orjson.dumps({"version": record.version, "verified_at": record.verified_at})
        await self.responses.put(
            self._record_key(file_key), payload, record, self.retention, counted=False
        )

    def _served(
        self,
        file_key: str,
        content: Content[Any],
        version: str | None,
        entry: Entry[Any],
        state: Freshness,
        record: VersionRecord | None,
    ) -> None:
        if state == "stale" and record is not None:
            self.counts.stale_revalidating += 1
            self._stale["revalidating"].inc()
            self._refresh_later(file_key, content, record)
            return  # avoided or not, the background revalidation decides (a later read counts)
        if state == "hold":
            self.counts.stale_quota += 1
            self._stale["quota"].inc()
        if version is not None:
            self._count_avoided(self._key(file_key, content, version), entry)

    def _count_avoided(self, key: str, entry: Entry[Any]) -> None:
        """A fixed-TTL cache would have downloaded this copy again once per TTL: count that
        download as avoided when this copy is older than a TTL and was not counted within one."""
        now = self.clock()
        stored_at = entry.expires_at - self.retention
        last = max(stored_at, self._avoided_at.get(key, stored_at))
        if now - last < self.policy.ttl:
            return
        self._avoided_at[key] = now
        self._avoided_at.move_to_end(key)
        if len(self._avoided_at) > AVOIDED_KEYS_LIMIT:
            self._avoided_at.popitem(last=False)
        self.counts.downloads_avoided += 1
        self.counts.bytes_saved += entry.size
        self._avoided.inc()
        self._saved.inc(entry.size)

    async def _revalidate(
        self, file_key: str, record: VersionRecord | None, *, waited: bool
    ) -> str | None:
        """The file's current version from /meta (recorded as verified now), or None."""
        if self.figma is None or not self.policy.revalidate or self.revalidation_refused:
            return None
        if waited:
            self.counts.waited += 1
        figma = self.figma

        async def ask() -> str | None:
            return await self._ask(figma, file_key, record)

        return await self._revalidations.run(file_key, ask)

    async def _ask(
        self, figma: FigmaClient, file_key: str, record: VersionRecord | None
    ) -> str | None:
        try:
            meta = await figma.get_file_meta(file_key)
        except UpstreamError as exc:
            self._count("failed")
            self.counts.last_failure = str(exc)[:200]
            if exc.http_status == 403:
                self._meta_refused_until = self.clock() + META_REFUSED_SECONDS
            return None
        self.counts.meta_bytes += meta.size
        if record is not None:  # else a first look-up of the version, not a revalidation
            self._count("unchanged" if meta.version == record.version else "changed")
        await self._remember(file_key, meta.version)
        return meta.version

    def _count(self, result: str) -> None:
        setattr(self.counts, result, getattr(self.counts, result) + 1)
        self._revalidated[result].inc()

    def _refresh_later(self, file_key: str, content: Content[Any], record: VersionRecord) -> None:
        """Revalidate in the background (once per file and kind of copy at a time)."""
        name = self._key(file_key, content, None)
        if name in self._background:
            return
        self.counts.background += 1
        task = asyncio.create_task(self._refresh(file_key, content, record))
        self._background[name] = task
        task.add_done_callback(lambda _: self._background.pop(name, None))

    async def _refresh(self, file_key: str, content: Content[Any], record: VersionRecord) -> None:
        try:
            version = await self._revalidate(file_key, record, waited=False)
            if version is None or version == record.version:
                return
            shortage = self.figma.quota_shortage("files") if self.figma is not None else None
            if shortage is not None:
                return  # the old copy serves until its bound; then a reader downloads
            await self._fill(file_key, content, version)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a reader past the bound downloads and sees the error itself
            log.debug("background refresh of a Figma copy failed: %s", type(exc).__name__)

    async def _fill(self, file_key: str, content: Content[T], version: str | None) -> T:
        """Download the copy (single flight per copy), store it under its version."""

        async def fill() -> T:
            download = await content.download(version)
            of = download.version
            if of is None:
                await self.responses.put(
                    self._key(file_key, content, None), download.payload, download.value
                )
                return download.value
            key = self._key(file_key, content, of)
            await self.responses.put(key, download.payload, download.value, self.retention)
            if not content.needs_version:  # the answer says its version: verified now
                await self._remember(file_key, of)
            return download.value

        return await self.flights.run(self._key(file_key, content, version), fill)
