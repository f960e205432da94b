"""GET / serves the dashboard: static files shipped with the package, a strict CSP, no inline
script or style, and the two facts only the server knows (admin token, fleet) on the page.
(What the page does in a browser: tests/integration/web/test_dashboard_browser.py.)"""

from __future__ import annotations

import re

from tests.support.session_metrics import running_app


async def test_the_dashboard_and_its_files_are_served_with_a_strict_policy() -> None:
    async with running_app() as app:
        page_response = await app.client.get("/")
        page = await page_response.text()
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        files, bodies = {}, {}
        for path in assets:
            files[path] = await app.client.get(path)
            bodies[path] = await files[path].text()
        missing = await app.client.get("/static/nothing.js")
        missing_body = await missing.json()
        template = await app.client.get("/static/dashboard.html")

    assert page_response.status == 200 and page_response.content_type == "text/html"
    policy = page_response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    assert re.search(r"\son\w+=", page) is None  # no inline event handlers either
    assert 'data-admin-token="none"' in page and 'data-fleet="off"' in page
    assert sorted(assets) == ["/static/dashboard.css", "/static/dashboard.js"]
    assert files["/static/dashboard.js"].content_type == "text/javascript"
    assert files["/static/dashboard.css"].content_type == "text/css"
    assert all(r.headers["X-Content-Type-Options"] == "nosniff" for r in files.values())
    assert "EventSource" in bodies["/static/dashboard.js"]
    assert "http://" not in bodies["/static/dashboard.js"]  # no CDN, nothing off-origin
    assert missing.status == 404 and missing_body["error"]["code"] == "not_found"
    assert template.status == 404  # the page is served at / only, with its facts filled in


async def test_an_unchanged_file_is_answered_304() -> None:
    async with running_app() as app:
        first = await app.client.get("/static/dashboard.js")
        again = await app.client.get(
            "/static/dashboard.js", headers={"If-None-Match": first.headers["ETag"]}
        )
        assert again.status == 304
        assert await again.read() == b""


async def test_the_page_says_when_cache_clear_needs_the_admin_token() -> None:
    async with running_app(admin_token="s3cret-token") as app:
        page = await (await app.client.get("/")).text()
    assert 'data-admin-token="required"' in page
    assert "s3cret-token" not in page
