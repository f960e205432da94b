"""The Figma REST API client: token auth, one deadline per call, a concurrency limit, bounded
retries, and a memory of Figma's rate limits.

Every HTTP exchange is counted once in `session_exporter_upstream_requests_total{service=
"figma_api",endpoint,status}` with its duration; failures become the project's typed errors
(`UpstreamTimeout` → 504, `UpstreamUnavailable` → 503, `UpstreamNotFound` → 404,
`UpstreamInvalid` → 400, others → 502), with Figma's own `err` text (sanitised, bounded).
The token (personal access token as `X-Figma-Token`, or OAuth as `Authorization: Bearer`) is sent
only to the configured API origin (never to image download URLs, never across a redirect) and
appears in no message. Image downloads go only to Figma's image hosts or the API's own origin
(`exporter.upstreams.image_hosts`), each redirect checked the same way, at most MAX_REDIRECTS of
them; the body is bounded by `max_response_bytes`.

`timeout` bounds the whole call, retries and waits included: a timed-out attempt is not repeated
(Figma's advice is a smaller request, and files, nodes and images share its most limited tier);
5xx answers are retried only while the deadline allows. A 429's `Retry-After` is remembered per
Figma rate-limit tier: until it passes, calls of that tier fail at once (503 with the remaining
`Retry-After`) without a request. What each tier spent in the last minute and its last 429 are
kept too (`quota`, `quota_shortage`): the Figma cache holds back while a tier runs short.

    async with aiohttp.ClientSession() as http:
        figma = FigmaClient(http, token, metrics, base_url="https://api.figma.com")
        document = await figma.get_file("FILEKEY", depth=2)
        meta = await figma.get_file_meta("FILEKEY")      # .version, without the document
        url = await figma.render_image("FILEKEY", "1:2", format="png", scale=2)
        image = await figma.download(url)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import orjson
import yarl

from exporter.core.catalog import ServiceName
from exporter.core.errors import (
    UpstreamError,
    UpstreamInvalid,
    UpstreamNotFound,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from exporter.core.metrics import Metrics
from exporter.core.redaction import redact
from exporter.upstreams.figma_rate_limits import (
    DATA_ENDPOINTS,
    DATA_TIER,
    ENDPOINT_TIERS,
    PLAN_TIERS,
    RATE_LIMIT_TYPES,
    RateLimit,
    bounded_header,
)
from exporter.upstreams.image_hosts import MAX_REDIRECTS, image_url_allowed
from exporter.upstreams.quota import Shortage, TierQuota
from exporter.upstreams.retry import RetryPolicy, parse_retry_after
from exporter.upstreams.upstream_metrics import UpstreamRecorder, status_class

SERVICE: ServiceName = "figma_api"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # one image or one JSON document
FORMAT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
}

REDIRECTS = frozenset({301, 302, 303, 307, 308})
ERR_TEXT_LIMIT = 200
ERR_BODY_LIMIT = 16 * 1024
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


def figma_err_text(raw: bytes, secrets: tuple[str, ...] = ()) -> str:
    """Figma's `err` (or `message`) from an error body: printable, one line, bounded."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    text = ""
    if isinstance(body, dict):
        for key in ("err", "message", "error"):
            if isinstance(body.get(key), str):
                text = body[key]
                break
    text = redact(text, secrets)
    text = " ".join(_UNPRINTABLE.sub(" ", text).split())
    return text if len(text) <= ERR_TEXT_LIMIT else text[: ERR_TEXT_LIMIT - 1] + "…"


@dataclass(frozen=True, slots=True)
class FileMeta:
    """What `GET /v1/files/:key/meta` says of a file: its version (Figma's `version`, else
    `last_touched_at`: either changes when the file does) and the answer's size in bytes."""

    version: str
    size: int


@dataclass(frozen=True, slots=True)
class RenderedImage:
    data: bytes
    content_type: str


class _Retry(Exception):
    """Internal: this attempt failed with `error`; retrying is allowed (after `wait`, if given)."""

    def __init__(self, error: UpstreamError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class FigmaClient:
    """Calls the Figma REST API on a passed-in `aiohttp.ClientSession`."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        token: str | None,
        metrics: Metrics,
        *,
        oauth_token: str | None = None,
        base_url: str = "https://api.figma.com",
        timeout: float = 10.0,
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_BYTES,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
        on_rate_limit: Callable[[RateLimit], None] | None = None,
    ) -> None:
        self._http = http
        if oauth_token:
            self._headers = {"Authorization": f"Bearer {oauth_token}"}
        elif token:
            self._headers = {"X-Figma-Token": token}
        else:
            raise ValueError("FigmaClient needs a personal access token or an OAuth token")
        self._secrets = tuple(t for t in (token, oauth_token) if t)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._limit = asyncio.Semaphore(max_concurrency)
        self.retry = retry or RetryPolicy()
        self.max_response_bytes = max_response_bytes
        self._sleep = sleep
        self._clock = clock
        self._on_rate_limit = on_rate_limit
        self._rate_limits: dict[int, RateLimit] = {}
        # What this replica spent of each tier in the last minute, and its 429s: the cache holds
        # back when a tier runs short (`quota_shortage`).
        self.quota = TierQuota()
        # The last data call's HTTP status (files, nodes, images): the probe's passive signal of
        # what users get.
        self.last_data_status: int | None = None
        self.recorder = UpstreamRecorder(metrics, SERVICE)

    def rate_limit(self, tier: int = DATA_TIER) -> RateLimit | None:
        """The lockout in force for `tier`, if any."""
        limit = self._rate_limits.get(tier)
        if limit is None or limit.remaining(self._clock()) <= 0:
            return None
        return limit

    def quota_shortage(self, *endpoints: str) -> Shortage | None:
        """Why one of the tiers `endpoints` spend is short now (429 lately, budget low), if so."""
        now = self._clock()
        for tier in sorted({ENDPOINT_TIERS[endpoint] for endpoint in endpoints}):
            shortage = self.quota.shortage(tier, now)
            if shortage is not None:
                return shortage
        return None

    # -- endpoints --------------------------------------------------------------------------

    async def get_file(
        self, file_key: str, *, depth: int | None = None, ids: list[str] | None = None
    ) -> dict[str, Any]:
        """`GET /v1/files/:key` (the document tree, optionally limited by depth or node ids)."""
        params: dict[str, str] = {}
        if depth is not None:
            params["depth"] = str(depth)
        if ids:
            params["ids"] = ",".join(ids)
        return await self._get_json("files", f"/v1/files/{file_key}", params)

    async def get_nodes(self, file_key: str, ids: list[str]) -> dict[str, Any]:
        """`GET /v1/files/:key/nodes?ids=` (the subtrees of the given nodes)."""
        return await self._get_json("nodes", f"/v1/files/{file_key}/nodes", {"ids": ",".join(ids)})

    async def get_file_meta(self, file_key: str) -> FileMeta:
        """`GET /v1/files/:key/meta` (Tier 2): the file's current version, without its content."""
        return await self._request(
            "meta", f"{self.base_url}/v1/files/{file_key}/meta", {}, self._file_meta
        )

    async def render_image(
        self, file_key: str, node_id: str, *, format: str = "png", scale: float = 1.0
    ) -> str:
        """`GET /v1/images/:key`: the URL Figma rendered `node_id` to."""
        params = {"ids": node_id, "format": format, "scale": _number(scale)}
        body = await self._get_json("images", f"/v1/images/{file_key}", params)
        if body.get("err"):
            raise UpstreamError(
                SERVICE, f"Figma could not render node {node_id}: {str(body['err'])[:200]}"
            )
        images = body.get("images")
        if not isinstance(images, dict):
            raise UpstreamError(SERVICE, "Figma images response has no 'images' object")
        url = images.get(node_id)
        if not url:
            raise UpstreamNotFound(
                SERVICE, f"Figma returned no image for node {node_id}", status="2xx"
            )
        return str(url)

    async def download(self, url: str) -> RenderedImage:
        """Fetch a rendered image from the URL Figma returned (no token: it is pre-signed), only
        from Figma's image hosts or the API's origin, following at most MAX_REDIRECTS redirects
        that stay there."""

        async def read(response: aiohttp.ClientResponse) -> RenderedImage | str:
            if response.status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise UpstreamError(SERVICE, "image download redirected without a Location")
                return str(response.url.join(yarl.URL(location)))
            data = await self._read_bounded(response, "image")
            content_type = response.content_type or "application/octet-stream"
            return RenderedImage(data, content_type)

        for _ in range(MAX_REDIRECTS + 1):
            if not image_url_allowed(url, self.base_url):
                raise UpstreamError(
                    SERVICE, f"image URL on a host that is not Figma's: {_host(url)}"
                )
            result = await self._request("image_download", url, {}, read, auth=False)
            if isinstance(result, RenderedImage):
                return result
            url = result
        raise UpstreamError(SERVICE, f"image download redirected more than {MAX_REDIRECTS} times")

    async def me(self) -> dict[str, Any]:
        """`GET /v1/me`, one attempt and no retries (needs scope `current_user:read`)."""
        # Outside the concurrency limit: our own load must not make the API look down.
        return await self._request(
            "me", self.base_url + "/v1/me", {}, self._json_object, retries=0, limited=False
        )

    # -- plumbing ---------------------------------------------------------------------------

    async def _get_json(self, endpoint: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        return await self._request(endpoint, self.base_url + path, params, self._json_object)

    async def _request(
        self,
        endpoint: str,
        url: str,
        params: dict[str, str],
        read: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        *,
        auth: bool = True,
        retries: int | None = None,
        limited: bool = True,
    ) -> T:
        """One logical call within one deadline: attempts until success, a non-retryable error,
        the retry bound, or a wait that would end past the deadline."""
        self._check_rate_limit(endpoint)
        limit = self.retry.max_retries if retries is None else retries
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        attempt = 0
        while True:
            try:
                return await self._attempt(endpoint, url, params, read, auth, limited, deadline)
            except _Retry as failed:
                wait = failed.wait if failed.wait is not None else self.retry.backoff(attempt)
                if attempt >= limit or loop.time() + wait >= deadline:
                    raise failed.error from None
                attempt += 1
                await self._sleep(wait)

    def _check_rate_limit(self, endpoint: str) -> None:
        tier = ENDPOINT_TIERS.get(endpoint)
        limit = self.rate_limit(tier) if tier is not None else None
        if limit is not None:
            now = self._clock()
            raise UpstreamUnavailable(
                SERVICE, limit.describe(now), status="429", retry_after=limit.remaining(now)
            )

    def _timed_out(self, endpoint: str) -> UpstreamTimeout:
        return UpstreamTimeout(SERVICE, f"Figma API {endpoint} timed out after {self.timeout:g}s")

    async def _attempt(
        self,
        endpoint: str,
        url: str,
        params: dict[str, str],
        read: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        auth: bool,
        limited: bool,
        deadline: float,
    ) -> T:
        async with self._limit if limited else contextlib.nullcontext():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:  # the whole deadline went on waiting for a slot
                raise self._timed_out(endpoint)
            started = time.perf_counter()  # after the queue: the histogram measures Figma, not us
            tier = ENDPOINT_TIERS.get(endpoint)
            if tier is not None:
                self.quota.spend(tier, self._clock())
            status = "error"
            try:
                async with self._http.get(
                    url,
                    params=params or None,
                    headers=self._headers if auth else None,
                    timeout=aiohttp.ClientTimeout(total=remaining),
                    # Never followed by aiohttp: a redirect must not carry the token elsewhere,
                    # and an image redirect is checked against the image hosts (`download`).
                    allow_redirects=False,
                ) as response:
                    status = status_class(response.status)
                    self._note_data_status(endpoint, response.status)
                    if not auth and response.status in REDIRECTS:
                        status = "2xx"  # a hop we follow (`read` says where); the next is counted
                    elif response.status >= 300:
                        raise await self._http_error(endpoint, response)
                    try:
                        return await read(response)
                    except UpstreamError:
                        status = "error"
                        raise
            except TimeoutError:
                # The deadline is spent: repeating would only multiply the wait and the quota.
                status = "timeout"
                raise self._timed_out(endpoint) from None
            except aiohttp.ClientError as exc:
                status = "error"
                message = f"Figma API {endpoint} unreachable ({type(exc).__name__})"
                raise _Retry(UpstreamUnavailable(SERVICE, message)) from None
            finally:
                self.recorder.record(endpoint, status, time.perf_counter() - started)

    def _note_data_status(self, endpoint: str, code: int) -> None:
        if endpoint in DATA_ENDPOINTS:
            self.last_data_status = code

    async def _http_error(self, endpoint: str, response: aiohttp.ClientResponse) -> Exception:
        """The typed error for a non-2xx answer, wrapped in `_Retry` when retrying may help."""
        code = response.status
        label = status_class(code)
        err = await self._err_text(response)
        said = f": {err}" if err else ""
        if code == 429:
            return self._rate_limited(endpoint, response, said)
        if code >= 500:
            message = f"Figma API {endpoint} failed ({code}){said}"
            return _Retry(UpstreamError(SERVICE, message, status=label, http_status=code))
        if code == 404:
            return UpstreamNotFound(
                SERVICE,
                f"Figma API {endpoint}: not found (404){said}",
                status=label,
                http_status=code,
            )
        if code == 400:
            return UpstreamInvalid(
                SERVICE,
                f"Figma API {endpoint} refused the request (400){said}",
                status=label,
                http_status=code,
            )
        if code in (401, 403):
            message = f"Figma API {endpoint} rejected the token ({code}){said}"
            return UpstreamError(SERVICE, message, status=label, http_status=code)
        return UpstreamError(
            SERVICE, f"Figma API {endpoint} answered {code}{said}", status=label, http_status=code
        )

    def _rate_limited(
        self, endpoint: str, response: aiohttp.ClientResponse, said: str
    ) -> Exception:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        limit_type = bounded_header(
            response.headers.get("X-Figma-Rate-Limit-Type"), RATE_LIMIT_TYPES
        )
        plan_tier = bounded_header(response.headers.get("X-Figma-Plan-Tier"), PLAN_TIERS)
        tier = ENDPOINT_TIERS.get(endpoint)
        if tier is not None:
            now = self._clock()
            until = now + retry_after if retry_after is not None else None
            self.quota.note_rate_limited(tier, now, until)
        if retry_after is not None and tier is not None:
            self._remember(
                RateLimit(
                    tier, endpoint, self._clock() + retry_after, retry_after, limit_type, plan_tier
                )
            )
        error = UpstreamError(
            SERVICE,
            f"Figma API {endpoint} rate limited (429, limit type {limit_type}, plan tier"
            f" {plan_tier}){said}",
            status="429",
            http_status=429,
            retry_after=retry_after,
        )
        # A wait longer than the bound is not worth holding the request: fail now, say when.
        return _Retry(error, retry_after) if self.retry.honours(retry_after) else error

    def _remember(self, limit: RateLimit) -> None:
        current = self._rate_limits.get(limit.tier)
        if current is not None and current.until >= limit.until:
            return
        self._rate_limits[limit.tier] = limit
        if self._on_rate_limit is not None:
            self._on_rate_limit(limit)

    async def _err_text(self, response: aiohttp.ClientResponse) -> str:
        try:
            raw = await response.content.read(ERR_BODY_LIMIT)
        except (aiohttp.ClientError, TimeoutError):
            return ""
        return figma_err_text(raw, self._secrets)

    async def _read_bounded(self, response: aiohttp.ClientResponse, what: str) -> bytes:
        """The body, refusing one over `max_response_bytes` without buffering all of it."""
        limit = self.max_response_bytes
        if response.content_length is not None and response.content_length > limit:
            raise UpstreamError(SERVICE, f"{what} larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > limit:
                raise UpstreamError(SERVICE, f"{what} larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _json_object(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        return _json_body(await self._read_bounded(response, "Figma API response"))

    async def _file_meta(self, response: aiohttp.ClientResponse) -> FileMeta:
        raw = await self._read_bounded(response, "Figma API response")
        file = _json_body(raw).get("file")
        version = None
        if isinstance(file, dict):
            version = file.get("version") or file.get("last_touched_at")
        if not isinstance(version, str) or not version:
            raise UpstreamError(SERVICE, "Figma file metadata has neither version nor time")
        return FileMeta(version, len(raw))


def _json_body(raw: bytes) -> dict[str, Any]:
    """A Figma JSON answer, which must be an object."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(SERVICE, "Figma API returned malformed JSON") from None
    if not isinstance(body, dict):
        raise UpstreamError(SERVICE, "Figma API returned JSON that is not an object")
    return body


def _host(url: str) -> str:
    """The host of `url` for a message (never the URL: signed URLs carry credentials)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    return _UNPRINTABLE.sub("?", host or "(none)")[:100]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
