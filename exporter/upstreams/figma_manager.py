"""FigmaSessionManager: Figma files, nodes and screenshots through the session store's cache.

Each operation (`file`, `nodes`, `screenshot`) is recorded once through `Instrumentation`, with
cache lookups by tier; screenshots also feed `screenshot_duration_seconds{source}` (cache hits
included), `screenshots_total{source,outcome}` and `screenshot_size_bytes{source}` (captured
images only, so its sum equals the bytes fetched from upstream). Concurrent identical requests
share one upstream call. Files, nodes and API renders are keyed to the file version and
revalidated with /meta when their TTL passes (`exporter.upstreams.revalidating_cache`); MCP
screenshots keep a fixed TTL (the desktop app's file has no version we can ask for). A
`session_id` must name a live session; calls made for it are counted in a bounded per-session
usage map (JSON only, never a label).

    manager = FigmaSessionManager(cache, instrumentation, metrics, figma=client, mcp=mcp)
    document = await manager.get_file("FILEKEY", depth=2, session_id=session.id)
    shot = await manager.screenshot("FILEKEY", "1:2", source="api", scale=2)
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from exporter.core.errors import UpstreamError, UpstreamUnavailable
from exporter.core.instrumentation import Instrumentation
from exporter.core.metrics import SCREENSHOT_OUTCOMES, SCREENSHOT_SOURCES, Metrics
from exporter.store.contract import right_sized
from exporter.upstreams.figma_client import FORMAT_TYPES, SERVICE, FigmaClient
from exporter.upstreams.freshness import FreshnessPolicy
from exporter.upstreams.mcp_client import McpClient
from exporter.upstreams.response_cache import (
    CachedImage,
    ResponseCache,
    decode_image,
    decode_json,
    encode_image,
)
from exporter.upstreams.revalidating_cache import (
    Content,
    Download,
    RevalidatingCache,
    version_of,
)
from exporter.upstreams.single_flight import SingleFlight

# Figma file keys are alphanumeric (22 characters today); node ids are `1:2`, `I1:2;3:4` (instances)
# or `1-2` as in URLs. Anything else never reaches a URL path or a cache key.
FILE_KEY = re.compile(r"[A-Za-z0-9]{1,128}")
# ASCII digits only: `\d` accepts any Unicode digit (fullwidth, Arabic-Indic...).
NODE_ID = re.compile(r"I?[0-9]+[:-][0-9]+(?:;[0-9]+[:-][0-9]+)*")
MAX_NODE_IDS = 100
# What storage may call any file; anything else must be the requested format's own type (a
# download that answers JSON or HTML is not an image, whatever it holds).
GENERIC_TYPES = ("application/octet-stream", "binary/octet-stream")
FORMATS = tuple(FORMAT_TYPES)
SCALE_RANGE = (0.01, 4.0)
MAX_DEPTH = 100
USAGE_LIMIT = 10_000

T = TypeVar("T")
SessionCheck = Callable[[str], Awaitable[object]]


def check_file_key(file_key: str) -> str:
    if not isinstance(file_key, str) or not FILE_KEY.fullmatch(file_key):
        raise ValueError("file_key must be 1-128 letters or digits")
    return file_key


def check_node_id(node_id: str) -> str:
    """A node id in Figma's `1:2` form (`1-2`, as in URLs, is converted)."""
    if not isinstance(node_id, str) or len(node_id) > 256 or not NODE_ID.fullmatch(node_id):
        raise ValueError(f"invalid node id {str(node_id)[:40]!r}; expected the form 1:2")
    return node_id.replace("-", ":")


def check_node_ids(ids: list[str]) -> list[str]:
    if not ids:
        raise ValueError("ids must list at least one node id")
    if len(ids) > MAX_NODE_IDS:
        raise ValueError(f"ids may list at most {MAX_NODE_IDS} node ids")
    return [check_node_id(node_id) for node_id in ids]


def check_screenshot(source: str, format: str, scale: float) -> None:
    if source not in SCREENSHOT_SOURCES:
        raise ValueError(f"source must be one of {', '.join(SCREENSHOT_SOURCES)}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]
    ):
        raise ValueError(f"scale must be a number from {SCALE_RANGE[0]} to {SCALE_RANGE[1]:g}")
    if source == "mcp" and format != "png":
        raise ValueError("source mcp returns PNG only; use format png or source api")


@dataclass(frozen=True, slots=True)
class Screenshot:
    node_id: str
    source: str
    content_type: str
    size_bytes: int
    sha256: str
    cached: bool
    duration_ms: float
    data: bytes = field(repr=False)


@dataclass(slots=True)
class SessionUsage:
    """What one session asked of Figma (JSON only)."""

    file: int = 0
    nodes: int = 0
    screenshot: int = 0
    errors: int = 0
    last_used: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "nodes": self.nodes,
            "screenshot": self.screenshot,
            "errors": self.errors,
            "last_used": self.last_used,
        }


class UsageMap:
    """Per-session usage, bounded: the least recently used session is forgotten first."""

    def __init__(self, limit: int = USAGE_LIMIT) -> None:
        self.limit = limit
        self._usage: OrderedDict[str, SessionUsage] = OrderedDict()

    def __len__(self) -> int:
        return len(self._usage)

    def get(self, session_id: str) -> SessionUsage | None:
        return self._usage.get(session_id)

    def record(self, session_id: str, operation: str, failed: bool) -> None:
        usage = self._usage.get(session_id)
        if usage is None:
            usage = self._usage[session_id] = SessionUsage()
            if len(self._usage) > self.limit:
                self._usage.popitem(last=False)
        else:
            self._usage.move_to_end(session_id)
        setattr(usage, operation, getattr(usage, operation) + 1)
        usage.errors += failed
        usage.last_used = time.time()


class FigmaSessionManager:
    """Figma context for sessions: see the module docstring."""

    def __init__(
        self,
        cache: ResponseCache,
        instrumentation: Instrumentation,
        metrics: Metrics,
        *,
        figma: FigmaClient | None = None,
        mcp: McpClient | None = None,
        session_check: SessionCheck | None = None,
        usage_limit: int = USAGE_LIMIT,
        freshness: FreshnessPolicy | None = None,
    ) -> None:
        self.cache = cache
        self.instrumentation = instrumentation
        self.figma = figma
        self.mcp = mcp
        self.session_check = session_check
        self.usage = UsageMap(usage_limit)
        self.flights = SingleFlight()
        self.versions = RevalidatingCache(
            cache,
            freshness or FreshnessPolicy(cache.ttl, stale_seconds=0.0),
            metrics,
            self.flights,
            figma=figma,
        )
        self._shot_duration = {s: metrics.screenshot_duration.labels(s) for s in SCREENSHOT_SOURCES}
        self._shot_size = {s: metrics.screenshot_size.labels(s) for s in SCREENSHOT_SOURCES}
        self._shots = {
            (s, o): metrics.screenshots.labels(s, o)
            for s in SCREENSHOT_SOURCES
            for o in SCREENSHOT_OUTCOMES
        }
        self.screenshot_counts = dict.fromkeys(self._shots, 0)
        self.screenshot_bytes = dict.fromkeys(SCREENSHOT_SOURCES, 0)

    # -- public operations ------------------------------------------------------------------

    async def get_file(
        self,
        file_key: str,
        *,
        session_id: str | None = None,
        depth: int | None = None,
        ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """The file document (`GET /v1/files/:key`), cached."""
        check_file_key(file_key)
        if depth is not None and (isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH):
            raise ValueError(f"depth must be an integer from 1 to {MAX_DEPTH}")
        node_ids = check_node_ids(ids) if ids else None
        figma = self._figma()

        async def fetch() -> dict[str, Any]:
            return await figma.get_file(file_key, depth=depth, ids=node_ids)

        content = _json_content("file", (str(depth), ",".join(node_ids or ())), fetch)
        return await self._operation(
            "file", f"file {file_key}", session_id, lambda: self._json(file_key, content)
        )

    async def get_nodes(
        self, file_key: str, ids: list[str], *, session_id: str | None = None
    ) -> dict[str, Any]:
        """The nodes' subtrees (`GET /v1/files/:key/nodes`), cached."""
        check_file_key(file_key)
        node_ids = check_node_ids(ids)
        figma = self._figma()

        async def fetch() -> dict[str, Any]:
            return await figma.get_nodes(file_key, node_ids)

        content = _json_content("nodes", (",".join(node_ids),), fetch)
        return await self._operation(
            "nodes", f"nodes {file_key}", session_id, lambda: self._json(file_key, content)
        )

    async def screenshot(
        self,
        file_key: str,
        node_id: str,
        *,
        source: str,
        format: str = "png",
        scale: float = 1.0,
        session_id: str | None = None,
    ) -> Screenshot:
        """A rendered node from the images API (`source="api"`) or the MCP server (`"mcp"`)."""
        check_file_key(file_key)
        node_id = check_node_id(node_id)
        check_screenshot(source, format, scale)
        capture = (
            self._capture_api(file_key, node_id, format, scale)
            if source == "api"
            else self._capture_mcp(file_key, node_id)
        )
        scale_part = f"{float(scale):g}" if source == "api" else "1"
        context = f"screenshot {source} {file_key} {node_id}"

        def run() -> Awaitable[tuple[CachedImage, bool]]:
            if source == "api":
                parts = (node_id, format, scale_part)
                return self._rendered(file_key, parts, self._counted(source, capture))
            key = self.cache.key("shot", source, file_key, node_id, format, scale_part)
            return self._image(key, source, capture, self._cacheable(source))

        started = time.perf_counter()
        try:
            image, cached = await self._operation("screenshot", context, session_id, run)
        except Exception:
            self._count_shot(source, "error")
            raise
        seconds = time.perf_counter() - started
        self._shot_duration[source].observe(seconds)
        self._count_shot(source, "cached" if cached else "success")
        return Screenshot(
            node_id,
            source,
            image.content_type,
            len(image.data),
            image.sha256,
            cached,
            seconds * 1000,
            image.data,
        )

    async def clear_cache(self) -> int:
        """Forget every cached Figma response (see ResponseCache.clear); returns entries dropped."""
        return await self.cache.clear()

    async def close(self) -> None:
        await self.versions.close()
        await self.flights.cancel_all()

    # -- JSON views -------------------------------------------------------------------------

    def session_usage(self, session_id: str) -> dict[str, Any] | None:
        usage = self.usage.get(session_id)
        return usage.as_dict() if usage is not None else None

    def stats(self) -> dict[str, Any]:
        """Separate API and MCP call counts, screenshot outcomes and sizes, cache and sharing."""
        hits = sum(
            n for (_, result), n in self.instrumentation.cache_counts.items() if result == "hit"
        )
        total = sum(self.instrumentation.cache_counts.values())
        return {
            "configured": {"figma_api": self.figma is not None, "mcp_server": self.mcp is not None},
            "requests": {
                "figma_api": self.figma.recorder.summary() if self.figma else None,
                "mcp_server": self.mcp.recorder.summary() if self.mcp else None,
            },
            "screenshots": {
                source: self._screenshot_stats(source) for source in SCREENSHOT_SOURCES
            },
            "cache": {
                "hits": hits,
                "lookups": total,
                "by_tier": {
                    f"{tier}_{result}": n
                    for (tier, result), n in self.instrumentation.cache_counts.items()
                },
            },
            "shared_upstream_calls": self.flights.shared,
            "sessions_tracked": len(self.usage),
        }

    def _screenshot_stats(self, source: str) -> dict[str, Any]:
        counts = {
            outcome: self.screenshot_counts[source, outcome] for outcome in SCREENSHOT_OUTCOMES
        }
        total = sum(counts.values())
        return {
            **counts,
            "total": total,
            "success_rate": round((total - counts["error"]) / total, 4) if total else None,
            "captured_bytes": self.screenshot_bytes[source],
        }

    # -- internals --------------------------------------------------------------------------

    def _figma(self) -> FigmaClient:
        if self.figma is None:
            raise UpstreamUnavailable(
                "figma_api",
                "Figma API is not configured (set --figma-token or --figma-oauth-token)",
            )
        return self.figma

    def _mcp(self) -> McpClient:
        if self.mcp is None:
            raise UpstreamUnavailable("mcp_server", "MCP server is not configured (set --mcp-url)")
        return self.mcp

    async def _operation(
        self, operation: str, context: str, session_id: str | None, run: Callable[[], Awaitable[T]]
    ) -> T:
        """Run one operation for an optional session; recorded once, success or failure."""
        started = time.perf_counter()
        known_session = False  # only sessions that exist get a usage entry (the map stays honest)
        try:
            if session_id is not None and self.session_check is not None:
                await self.session_check(session_id)
            known_session = session_id is not None
            result = await run()
        except Exception as exc:
            self.instrumentation.record_exception(operation, started, exc, context)
            if known_session and session_id is not None:
                self.usage.record(session_id, operation, failed=True)
            raise
        self.instrumentation.record(operation, time.perf_counter() - started, context=context)
        if session_id is not None:
            self.usage.record(session_id, operation, failed=False)
        return result

    async def _json(self, file_key: str, content: Content[dict[str, Any]]) -> dict[str, Any]:
        document, _ = await self.versions.read(file_key, content)
        return document

    async def _rendered(
        self,
        file_key: str,
        parts: tuple[str, ...],
        capture: Callable[[], Awaitable[CachedImage]],
    ) -> tuple[CachedImage, bool]:
        """An API render, keyed to the file version it was rendered from."""

        async def download(version: str | None) -> Download[CachedImage]:
            image = await capture()
            return Download(image, encode_image(image), version)

        content = Content("shot", parts, decode_image, download, needs_version=True)
        return await self.versions.read(file_key, content)

    def _counted(
        self, source: str, capture: Callable[[], Awaitable[CachedImage]]
    ) -> Callable[[], Awaitable[CachedImage]]:
        """`capture`, observed once per capture (not per waiter): the size histogram's sum is
        what the upstream actually sent."""

        async def counted() -> CachedImage:
            image = await capture()
            self._shot_size[source].observe(len(image.data))
            self.screenshot_bytes[source] += len(image.data)
            return image

        return counted

    def _cacheable(self, source: str) -> Callable[[], bool]:
        """Whether a screenshot of `source` may be cached under the requested file key now. The
        desktop MCP server renders whatever file is open in the app: its images are of no known
        file, and caching them under the requested key could serve another file's image."""
        if source == "api":
            return lambda: True
        mcp = self._mcp()
        return lambda: mcp.screenshot_takes_file() is True

    async def _image(
        self,
        key: str,
        source: str,
        capture: Callable[[], Awaitable[CachedImage]],
        cacheable: Callable[[], bool],
    ) -> tuple[CachedImage, bool]:
        """The image cached under `key`, else captured (and cached if `cacheable()`);
        concurrent identical requests share one capture."""
        if cacheable():
            cached: CachedImage | None = await self.cache.get(key, decode_image)
            if cached is not None:
                return cached, True

        counted = self._counted(source, capture)

        async def fill() -> CachedImage:
            image = await counted()
            if cacheable():
                await self.cache.put(key, encode_image(image), image)
            return image

        return await self.flights.run(key, fill), False

    def _capture_api(
        self, file_key: str, node_id: str, format: str, scale: float
    ) -> Callable[[], Awaitable[CachedImage]]:
        figma = self._figma()

        async def capture() -> CachedImage:
            url = await figma.render_image(file_key, node_id, format=format, scale=scale)
            rendered = await figma.download(url)
            if rendered.content_type not in (FORMAT_TYPES[format], *GENERIC_TYPES):
                raise UpstreamError(
                    SERVICE, f"the {format} image download answered {rendered.content_type[:60]}"
                )
            return CachedImage.of(_content_type(rendered.content_type, format), rendered.data)

        return capture

    def _capture_mcp(self, file_key: str, node_id: str) -> Callable[[], Awaitable[CachedImage]]:
        mcp = self._mcp()

        async def capture() -> CachedImage:
            rendered = await mcp.get_screenshot(file_key, node_id)
            return CachedImage.of(rendered.content_type, rendered.data)

        return capture

    def _count_shot(self, source: str, outcome: str) -> None:
        self._shots[source, outcome].inc()
        self.screenshot_counts[source, outcome] += 1


def _json_content(
    kind: str, parts: tuple[str, ...], fetch: Callable[[], Awaitable[dict[str, Any]]]
) -> Content[dict[str, Any]]:
    """A file or nodes answer as cached content: it says its own version."""

    async def download(_: str | None) -> Download[dict[str, Any]]:
        document = await fetch()
        return Download(document, right_sized(orjson.dumps(document)), version_of(document))

    return Content(kind, parts, decode_json, download)


def _content_type(served: str, format: str) -> str:
    """The download's content type unless it is generic (S3 sometimes says octet-stream)."""
    if served and served not in GENERIC_TYPES:
        return served
    return FORMAT_TYPES[format]
