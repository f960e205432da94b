"""The Figma REST API client: token auth, timeouts, a concurrency limit, bounded retries.

Every HTTP exchange is counted once in `session_exporter_upstream_requests_total{service=
"figma_api",endpoint,status}` with its duration; failures become the project's typed errors
(`UpstreamTimeout` → 504, `UpstreamUnavailable` → 503, `UpstreamNotFound` → 404, others → 502).
The token is sent only to the configured API origin (never to image download URLs, never across a
redirect) and appears in no message.

    async with aiohttp.ClientSession() as http:
        figma = FigmaClient(http, token, metrics, base_url="https://api.figma.com")
        document = await figma.get_file("FILEKEY", depth=2)
        url = await figma.render_image("FILEKEY", "1:2", format="png", scale=2)
        image = await figma.download(url)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson

from exporter.errors import UpstreamError, UpstreamNotFound, UpstreamTimeout, UpstreamUnavailable
from exporter.metrics import Metrics
from exporter.upstreams.retry import RetryPolicy, parse_retry_after
from exporter.upstreams.upstream_metrics import UpstreamRecorder, status_class

SERVICE = "figma_api"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # one image or one JSON document
FORMAT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
}

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


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
        token: str,
        metrics: Metrics,
        *,
        base_url: str = "https://api.figma.com",
        timeout: float = 10.0,
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_BYTES,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._headers = {"X-Figma-Token": token}
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limit = asyncio.Semaphore(max_concurrency)
        self.retry = retry or RetryPolicy()
        self.max_response_bytes = max_response_bytes
        self._sleep = sleep
        self.recorder = UpstreamRecorder(metrics, SERVICE)

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
        """Fetch a rendered image from the URL Figma returned (no token: it is pre-signed)."""

        async def read(response: aiohttp.ClientResponse) -> RenderedImage:
            data = await self._read_bounded(response, "image")
            content_type = response.content_type or "application/octet-stream"
            return RenderedImage(data, content_type)

        return await self._request("image_download", url, {}, read, auth=False)

    async def me(self) -> dict[str, Any]:
        """`GET /v1/me`, one attempt and no retries: the availability probe."""
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
        """One logical call: attempts until success, a non-retryable error, or the retry bound."""
        limit = self.retry.max_retries if retries is None else retries
        attempt = 0
        while True:
            try:
                return await self._attempt(endpoint, url, params, read, auth, limited)
            except _Retry as failed:
                if attempt >= limit:
                    raise failed.error from None
                wait = failed.wait if failed.wait is not None else self.retry.backoff(attempt)
                attempt += 1
                await self._sleep(wait)

    async def _attempt(
        self,
        endpoint: str,
        url: str,
        params: dict[str, str],
        read: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        auth: bool,
        limited: bool,
    ) -> T:
        async with self._limit if limited else contextlib.nullcontext():
            started = time.perf_counter()  # after the queue: the histogram measures Figma, not us
            status = "error"
            try:
                async with self._http.get(
                    url,
                    params=params or None,
                    headers=self._headers if auth else None,
                    timeout=self._timeout,
                    allow_redirects=not auth,  # a redirect must never carry the token elsewhere
                ) as response:
                    status = status_class(response.status)
                    if response.status >= 300:
                        raise self._http_error(endpoint, response)
                    try:
                        return await read(response)
                    except UpstreamError:
                        status = "error"
                        raise
            except TimeoutError:
                status = "timeout"
                message = f"Figma API {endpoint} timed out after {self.timeout:g}s"
                raise _Retry(UpstreamTimeout(SERVICE, message)) from None
            except aiohttp.ClientError as exc:
                status = "error"
                message = f"Figma API {endpoint} unreachable ({type(exc).__name__})"
                raise _Retry(UpstreamUnavailable(SERVICE, message)) from None
            finally:
                self.recorder.record(endpoint, status, time.perf_counter() - started)

    def _http_error(self, endpoint: str, response: aiohttp.ClientResponse) -> Exception:
        """The typed error for a non-2xx answer, wrapped in `_Retry` when retrying may help."""
        code = response.status
        label = status_class(code)
        if code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            error = UpstreamError(
                SERVICE,
                f"Figma API {endpoint} rate limited (429)",
                status="429",
                http_status=code,
                retry_after=retry_after,
            )
            # A wait longer than the bound is not worth holding the request: fail now, say when.
            return _Retry(error, retry_after) if self.retry.honours(retry_after) else error
        if code >= 500:
            return _Retry(
                UpstreamError(
                    SERVICE, f"Figma API {endpoint} failed ({code})", status=label, http_status=code
                )
            )
        if code == 404:
            return UpstreamNotFound(
                SERVICE, f"Figma API {endpoint}: not found (404)", status=label, http_status=code
            )
        if code in (401, 403):
            message = f"Figma API {endpoint} rejected the token ({code})"
            return UpstreamError(SERVICE, message, status=label, http_status=code)
        return UpstreamError(
            SERVICE, f"Figma API {endpoint} answered {code}", status=label, http_status=code
        )

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
        raw = await self._read_bounded(response, "Figma API response")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(SERVICE, "Figma API returned malformed JSON") from None
        if not isinstance(body, dict):
            raise UpstreamError(SERVICE, "Figma API returned JSON that is not an object")
        return body


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
