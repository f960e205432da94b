"""A local aiohttp server that behaves like the parts of the Figma REST API the exporter calls.

Endpoints (same paths, auth header and JSON shapes as api.figma.com):
`GET /v1/me`, `GET /v1/files/{key}` (`depth`, `ids`), `GET /v1/files/{key}/nodes?ids=`,
`GET /v1/files/{key}/meta` (counted as `meta`), `GET /v1/images/{key}?ids=&format=&scale=` whose
URLs point back at this server (`/_images/...`, unauthenticated like Figma's pre-signed S3 links,
counted as `image_download`).

Every file has a version, "1234567890" until `touch(key)` edits it (a new version and
`last_touched_at`); `version(key)` is its current one. `delays[endpoint]` makes every answer of an
endpoint take that long (Figma's own latencies, for the benchmark).

Faults are queued per endpoint and consumed one per request, or made permanent with `times=None`:

    double = await FigmaDouble().start()
    double.fail("files", Fault("429", retry_after=0.05))      # next /v1/files answers 429
    double.fail("me", Fault("500"), times=None)               # every /v1/me answers 500
    double.image_size = 10 * 1024 * 1024                      # the 10 MB image
    double.image_location = "http://elsewhere/x.png"           # /v1/images answers this URL
    double.download_redirect = "http://elsewhere/y.png"        # downloads answer 302 to it once
    double.requests["files"]                                  # requests seen per endpoint
    double.touch("FILE1")                                     # FILE1 changes: a new version
    double.reset()

A file key starting with `missing` answers 404; a wrong or absent token (`X-Figma-Token`, or
`Authorization: Bearer` with `oauth_token`) answers 403 "Invalid token"; a node id ending in `:404`
renders to a null image URL, as Figma answers for nodes it cannot render. `403_scope` is Figma's
answer to a valid token without the endpoint's scope; a 429 carries `X-Figma-Rate-Limit-Type`
and `X-Figma-Plan-Tier` (Fault's `limit_type`, `plan_tier`).
"""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web


class SpecChecker(Protocol):
    """What the double asks of Figma's OpenAPI spec (tests/support/figma_spec.FigmaSpec)."""

    def request_errors(self, method: str, path: str, query: dict[str, str]) -> list[str]: ...

    def response_errors(self, method: str, path: str, status: int, body: Any) -> list[str]: ...


DEFAULT_TOKEN = "figd_TEST-secret-token-do-not-leak-0123456789"
DEFAULT_OAUTH_TOKEN = "figu_TEST-oauth-secret-do-not-leak-9876543210"
PNG_BYTES = 2048  # every PNG image download is exactly this long unless image_size says otherwise
ENDPOINTS = ("me", "files", "nodes", "meta", "images", "image_download")
FIRST_VERSION = 1234567890
FIRST_TOUCHED = 1714564800.0  # 2024-05-01T12:00:00Z
FAULT_KINDS = ("429", "500", "503", "slow", "malformed", "400", "403", "403_scope", "404", "drop")
SCOPE_ERROR = "Invalid scope(s): this endpoint requires the current_user:read scope"


def png_of_size(size: int, width: int = 4, height: int = 4, comment: bytes = b"") -> bytes:
    """A valid PNG of exactly `size` bytes: a tiny image padded with a tEXt chunk (which starts
    with `comment`, so a test can tell images apart)."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    body = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + _chunk(
        b"IDAT", zlib.compress(raw)
    )
    head, tail = b"\x89PNG\r\n\x1a\n", _chunk(b"IEND", b"")
    padding = size - len(head) - len(body) - len(tail) - 12
    label = b"Comment\x00" + comment
    if padding < len(label):
        raise ValueError(f"a PNG cannot be as small as {size} bytes")
    text = label + b"x" * (padding - len(label))
    return head + body + _chunk(b"tEXt", text) + tail


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def image_of_size(fmt: str, size: int) -> tuple[bytes, str]:
    """Bytes with the right magic for `fmt`, and their content type."""
    if fmt == "png":
        return png_of_size(size), "image/png"
    prefix, content_type = {
        "jpg": (b"\xff\xd8\xff\xe0", "image/jpeg"),
        "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><!--', "image/svg+xml"),
        "pdf": (b"%PDF-1.7\n", "application/pdf"),
    }[fmt]
    return prefix + b" " * (size - len(prefix)), content_type


@dataclass(frozen=True, slots=True)
class Fault:
    """One misbehaviour: `kind` in FAULT_KINDS; `retry_after` for 429, `delay` for slow."""

    kind: str
    retry_after: float | None = None
    delay: float = 2.0
    limit_type: str | None = None
    plan_tier: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}")


class FigmaDouble:
    """The fake Figma API; see the module docstring."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        oauth_token: str = DEFAULT_OAUTH_TOKEN,
        spec: SpecChecker | None = None,
    ) -> None:
        self.token = token
        self.oauth_token = oauth_token
        # With a spec, every API request and JSON answer is checked; what fails is kept here.
        self.spec = spec
        self.violations: list[str] = []
        self.checked = 0
        self.image_size = PNG_BYTES
        # A hostile or broken answer: the URL every rendered image is said to be at, and where a
        # download redirects to (302, once: a request carrying `?hop` is served).
        self.image_location: str | None = None
        self.download_redirect: str | None = None
        self.requests: Counter[str] = Counter()
        self.bytes_served = 0
        self.tokens_seen: list[str | None] = []
        self.delays: dict[str, float] = {}
        self._versions: dict[str, tuple[int, float]] = {}  # key: version, last touched (Unix)
        self._faults: dict[str, deque[Fault]] = {}
        self._permanent: dict[str, Fault] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, endpoint: str, fault: Fault, times: int | None = 1) -> None:
        """Apply `fault` to the next `times` requests of `endpoint` (None = until reset)."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        if times is None:
            self._permanent[endpoint] = fault
        else:
            self._faults.setdefault(endpoint, deque()).extend([fault] * times)

    def touch(self, key: str, at: float | None = None) -> str:
        """Edit file `key` (at `at`, default now): it gets a new version, which is returned."""
        version, _ = self._versions.get(key, (FIRST_VERSION, FIRST_TOUCHED))
        self._versions[key] = (version + 1, time.time() if at is None else at)
        return str(version + 1)

    def version(self, key: str) -> str:
        return str(self._versions.get(key, (FIRST_VERSION, FIRST_TOUCHED))[0])

    def reset(self) -> None:
        self.violations.clear()
        self._versions.clear()
        self.delays.clear()
        self.checked = 0
        self._faults.clear()
        self._permanent.clear()
        self.requests.clear()
        self.tokens_seen.clear()
        self.bytes_served = 0
        self.image_size = PNG_BYTES
        self.image_location = self.download_redirect = None

    async def start(self) -> FigmaDouble:
        app = web.Application(middlewares=[self._check_spec] if self.spec is not None else [])
        app.router.add_get("/v1/me", self._me)
        app.router.add_get("/v1/files/{key}", self._file)
        app.router.add_get("/v1/files/{key}/nodes", self._nodes)
        app.router.add_get("/v1/files/{key}/meta", self._meta)
        app.router.add_get("/v1/images/{key}", self._images)
        app.router.add_get("/_images/{key}/{name}", self._download)
        # Slow handlers must stop when the client gives up, or cleanup would wait for them.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- request plumbing -------------------------------------------------------------------

    @web.middleware
    async def _check_spec(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Check the request and the JSON answer against the spec (image downloads are not the
        API: they are pre-signed storage URLs)."""
        response = await handler(request)
        spec = self.spec
        if spec is None or not request.path.startswith("/v1/"):
            return response
        query = {key: request.query[key] for key in request.query}
        self.violations += spec.request_errors(request.method, request.path, query)
        if isinstance(response, web.Response) and response.content_type == "application/json":
            assert isinstance(response.body, bytes)
            try:
                body = orjson.loads(response.body)
            except orjson.JSONDecodeError:
                body = None  # the `malformed` fault: not the spec's business
            if body is not None:
                self.violations += spec.response_errors(
                    request.method, request.path, response.status, body
                )
        self.checked += 1
        return response

    def _next_fault(self, endpoint: str) -> Fault | None:
        queue = self._faults.get(endpoint)
        if queue:
            return queue.popleft()
        return self._permanent.get(endpoint)

    async def _begin(
        self, request: web.Request, endpoint: str, *, auth: bool = True
    ) -> web.Response | None:
        """Count, check auth, apply a fault; a response means "answer with this"."""
        self.requests[endpoint] += 1
        if self.delays.get(endpoint):
            await asyncio.sleep(self.delays[endpoint])
        token = request.headers.get("X-Figma-Token")
        bearer = request.headers.get("Authorization", "")
        if auth:
            self.tokens_seen.append(token or bearer or None)
        fault = self._next_fault(endpoint)
        if fault is not None:
            response = await self._apply(request, fault)
            if response is not None:
                return response
        valid = token == self.token or bearer == f"Bearer {self.oauth_token}"
        if auth and not valid:
            return web.json_response({"status": 403, "err": "Invalid token"}, status=403)
        return None

    async def _apply(self, request: web.Request, fault: Fault) -> web.Response | None:
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "429":
            headers = (
                {} if fault.retry_after is None else {"Retry-After": _seconds(fault.retry_after)}
            )
            if fault.limit_type is not None:
                headers["X-Figma-Rate-Limit-Type"] = fault.limit_type
            if fault.plan_tier is not None:
                headers["X-Figma-Plan-Tier"] = fault.plan_tier
            return web.json_response(
                {"status": 429, "err": "Rate limit exceeded"}, status=429, headers=headers
            )
        if fault.kind == "403_scope":
            return web.json_response({"status": 403, "err": SCOPE_ERROR}, status=403)
        if fault.kind == "400":
            return web.json_response(
                {"status": 400, "err": "Invalid parameter: ids\x00 must\nbe node ids"}, status=400
            )
        if fault.kind in ("500", "503", "403", "404"):
            status = int(fault.kind)
            err = {403: "Invalid token", 404: "Not found"}.get(status, f"status {status}")
            return web.json_response({"status": status, "err": err}, status=status)
        if fault.kind == "malformed":
            return web.Response(text='{"name": "Broken', content_type="application/json")
        # "drop": close the connection without an answer.
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)

    # -- endpoints --------------------------------------------------------------------------

    async def _me(self, request: web.Request) -> web.Response:
        if (early := await self._begin(request, "me")) is not None:
            return early
        return web.json_response(
            {
                "id": "1234567890",
                "email": "designer@example.com",
                "handle": "Designer",
                "img_url": "",
            }
        )

    async def _file(self, request: web.Request) -> web.Response:
        if (early := await self._begin(request, "files")) is not None:
            return early
        key = request.match_info["key"]
        if key.startswith("missing"):
            return web.json_response({"status": 404, "err": "Not found"}, status=404)
        depth = int(request.query.get("depth", "3"))
        return web.json_response(
            {**self._file_header(key), "document": _document(depth), **_libraries()}
        )

    async def _nodes(self, request: web.Request) -> web.Response:
        if (early := await self._begin(request, "nodes")) is not None:
            return early
        key = request.match_info["key"]
        if key.startswith("missing"):
            return web.json_response({"status": 404, "err": "Not found"}, status=404)
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if not ids:
            return web.json_response({"status": 400, "err": "Missing ids"}, status=400)
        nodes = {i: {"document": _frame(i), **_libraries()} for i in ids}
        return web.json_response({**self._file_header(key), "nodes": nodes})

    async def _meta(self, request: web.Request) -> web.Response:
        if (early := await self._begin(request, "meta")) is not None:
            return early
        key = request.match_info["key"]
        if key.startswith("missing"):
            return web.json_response({"status": 404, "err": "Not found"}, status=404)
        _, touched = self._versions.get(key, (FIRST_VERSION, FIRST_TOUCHED))
        user = {"id": "1234567890", "handle": "Designer", "img_url": ""}
        file = {
            "name": f"Design {key}",
            "folder_name": "Drafts",
            "last_touched_at": _iso(touched),
            "creator": user,
            "last_touched_by": user,
            "thumbnail_url": "",
            "editorType": "figma",
            "role": "viewer",
            "link_access": "view",
            "url": f"https://www.figma.com/design/{key}",
            "version": self.version(key),
        }
        return web.json_response({"file": file})

    def _file_header(self, key: str) -> dict[str, Any]:
        _, touched = self._versions.get(key, (FIRST_VERSION, FIRST_TOUCHED))
        return {**_file_header(key), "version": self.version(key), "lastModified": _iso(touched)}

    async def _images(self, request: web.Request) -> web.Response:
        if (early := await self._begin(request, "images")) is not None:
            return early
        key = request.match_info["key"]
        if key.startswith("missing"):
            return web.json_response({"status": 404, "err": "Not found"}, status=404)
        fmt = request.query.get("format", "png")
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        # Like Figma, a node it cannot render (here: any id ending in :404) maps to null.
        images = {
            i: None
            if i.endswith(":404")
            else self.image_location or f"{self.url}/_images/{key}/{i.replace(':', '-')}.{fmt}"
            for i in ids
        }
        return web.json_response({"err": None, "images": images, "status": 200})

    async def _download(self, request: web.Request) -> web.Response:
        if (early := await self._begin(request, "image_download", auth=False)) is not None:
            return early
        if self.download_redirect is not None and "hop" not in request.query:
            raise web.HTTPFound(self.download_redirect)
        fmt = request.match_info["name"].rpartition(".")[2]
        body, content_type = image_of_size(fmt, self.image_size)
        self.bytes_served += len(body)
        return web.Response(body=body, content_type=content_type)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _file_header(key: str) -> dict[str, Any]:
    return {
        "name": f"Design {key}",
        "role": "viewer",
        "lastModified": "2024-05-01T12:00:00Z",
        "editorType": "figma",
        "thumbnailUrl": "",
        "version": "1234567890",
        "linkAccess": "view",
    }


def _libraries() -> dict[str, Any]:
    return {"components": {}, "componentSets": {}, "schemaVersion": 0, "styles": {}}


# A realistic document: Figma files the exporter serves have pages of dozens of frames with tens of
# layers each. FRAMES_PER_PAGE x LAYERS_PER_FRAME nodes (about 600 nodes, some 400 KB of JSON),
# every node with the properties Figma's spec requires of its type.
FRAMES_PER_PAGE = 40
LAYERS_PER_FRAME = 14


def _box(x: float, y: float, width: float, height: float) -> dict[str, float]:
    return {"x": x, "y": y, "width": width, "height": height}


def _paint(r: float, g: float, b: float) -> dict[str, Any]:
    return {
        "type": "SOLID",
        "visible": True,
        "opacity": 1,
        "blendMode": "NORMAL",
        "color": {"r": r, "g": g, "b": b, "a": 1},
    }


def _layer(node_id: str, kind: str, index: int, origin: tuple[float, float]) -> dict[str, Any]:
    box = _box(origin[0] + 16, origin[1] + 16 + index * 24, 288, 20)
    node: dict[str, Any] = {
        "id": node_id,
        "name": f"{kind.title()} {index}",
        "type": kind,
        "scrollBehavior": "SCROLLS",
        "blendMode": "PASS_THROUGH",
        "absoluteBoundingBox": box,
        "absoluteRenderBounds": box,
        "fills": [_paint(0.1, 0.1, 0.1 + index / 100)],
        "effects": [],
        "strokes": [],
        "strokeWeight": 1,
        "strokeAlign": "INSIDE",
        "constraints": {"vertical": "TOP", "horizontal": "LEFT"},
    }
    if kind == "TEXT":
        node |= {
            "characters": f"Label {index}: the quick brown fox jumps over the lazy dog",
            "style": {
                "fontFamily": "Inter",
                "fontPostScriptName": "Inter-Regular",
                "fontWeight": 400,
                "fontSize": 14,
                "textAlignHorizontal": "LEFT",
                "textAlignVertical": "TOP",
                "letterSpacing": 0,
                "lineHeightPx": 20,
                "lineHeightPercent": 100,
                "lineHeightUnit": "INTRINSIC_%",
            },
            "characterStyleOverrides": [],
            "styleOverrideTable": {},
            "lineTypes": ["NONE"],
            "lineIndentations": [0],
        }
    else:
        node["cornerRadius"] = 4
    return node


def _frame(node_id: str, index: int = 0) -> dict[str, Any]:
    prefix = node_id.partition(":")[0]
    origin = (float(index % 8) * 400, float(index // 8) * 600)
    box = _box(origin[0], origin[1], 320, 16 + LAYERS_PER_FRAME * 24)
    children = [
        _layer(f"{prefix}:{1000 + index * 100 + i}", "TEXT" if i % 2 else "RECTANGLE", i, origin)
        for i in range(LAYERS_PER_FRAME)
    ]
    return {
        "id": node_id,
        "name": f"Frame {node_id}",
        "type": "FRAME",
        "scrollBehavior": "SCROLLS",
        "blendMode": "PASS_THROUGH",
        "absoluteBoundingBox": box,
        "absoluteRenderBounds": box,
        "clipsContent": True,
        "fills": [_paint(1, 1, 1)],
        "effects": [],
        "strokes": [],
        "strokeWeight": 1,
        "strokeAlign": "INSIDE",
        "constraints": {"vertical": "TOP", "horizontal": "LEFT"},
        "children": children,
    }


def _prune(node: dict[str, Any], depth: int) -> dict[str, Any]:
    """The node with children only `depth` levels down (Figma's `depth`). Below it, containers
    keep an empty `children`: the spec requires the property of every container type."""
    if "children" not in node:
        return node
    if depth <= 0:
        return {**node, "children": []}
    return {**node, "children": [_prune(child, depth - 1) for child in node["children"]]}


def _document(depth: int) -> dict[str, Any]:
    frames = [_frame(f"1:{2 + i}", i) for i in range(FRAMES_PER_PAGE)]
    canvas: dict[str, Any] = {
        "id": "0:1",
        "name": "Page 1",
        "type": "CANVAS",
        "scrollBehavior": "SCROLLS",
        "backgroundColor": {"r": 0.96, "g": 0.96, "b": 0.96, "a": 1},
        "flowStartingPoints": [],
        "prototypeDevice": {"type": "NONE", "rotation": "NONE"},
        "prototypeStartNodeID": None,
        "children": frames,
    }
    document: dict[str, Any] = {
        "id": "0:0",
        "name": "Document",
        "type": "DOCUMENT",
        "scrollBehavior": "SCROLLS",
        "children": [canvas],
    }
    return _prune(document, depth)
