"""GET /: the live dashboard (static HTML, CSS and JavaScript shipped in `exporter/web/static/`),
and GET /static/{asset}: its files.

The page is fed by the event stream and the JSON API from the browser; the server only fills in
what the page cannot ask for without a request of its own (whether Cache Clear needs the admin
token, whether a fleet view exists) and sends a strict Content-Security-Policy: no inline script
or style, nothing from another origin, no framing. The files are read once, at import, and served
with an ETag of their content, so 200 open dashboards reloading cost a 304 each.
"""

from __future__ import annotations

import hashlib
import html
from importlib import resources

from aiohttp import web

from exporter.core.build import __version__
from exporter.web.keys import SETTINGS
from exporter.web.responses import ApiError

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
PAGE = "dashboard.html"


class Asset:
    """One static file: its bytes, content type and a strong ETag of its content."""

    __slots__ = ("body", "content_type", "etag")

    def __init__(self, name: str, body: bytes) -> None:
        self.body = body
        suffix = name[name.rfind(".") :]
        self.content_type = CONTENT_TYPES.get(suffix, "text/html")
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _load_assets() -> dict[str, Asset]:
    folder = resources.files("exporter.web") / "static"
    return {
        item.name: Asset(item.name, item.read_bytes())
        for item in folder.iterdir()
        if item.is_file() and not item.name.startswith(".")
    }


ASSETS = _load_assets()


def _page(admin_token: bool, fleet: bool) -> str:
    """The page with the two facts the server knows filled in (as data attributes)."""
    template = ASSETS[PAGE].body.decode()
    return template.replace("{{version}}", html.escape(__version__)).replace(
        "{{flags}}",
        f'data-admin-token="{"required" if admin_token else "none"}"'
        f' data-fleet="{"on" if fleet else "off"}"',
    )


async def dashboard(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    page = _page(settings.admin_token is not None, settings.redis_url is not None)
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    found = ASSETS.get(name)
    if found is None or name == PAGE:
        raise ApiError(404, "not_found", f"no dashboard file {name!r}")
    headers = {**SECURITY_HEADERS, "ETag": found.etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == found.etag:
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if found.content_type.startswith("text/") else None
    return web.Response(
        body=found.body, content_type=found.content_type, charset=charset, headers=headers
    )
