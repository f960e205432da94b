"""Requests a browser sends for another site, and requests aiohttp's parser or decoder rejects:
each gets a JSON error, changes nothing, and logs at most one line without a traceback."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator

import orjson
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.web import create_app
from exporter.web.server import make_runner, site
from tests.support.redis_server import free_port
from tests.support.session_metrics import FAST, running_app

CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "http://localhost:3000"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_cross_site_state_change_is_refused_and_changes_nothing(
    headers: dict[str, str],
) -> None:
    async with running_app() as app:
        created = await app.json("/api/sessions", 201, "POST", json={"data": {"a": 1}})
        path = f"/api/sessions/{created['id']}"
        # The "simple request" a page can send without a preflight.
        simple = {"Content-Type": "text/plain", **headers}
        for method, url in [
            ("POST", "/api/session-metrics/cache/clear"),
            ("DELETE", path),
            ("PUT", path),
            ("POST", "/api/sessions"),
        ]:
            body = await app.json(url, 403, method, headers=simple, data=b'{"data": {}}')
            assert body["error"]["code"] == "cross_site_request"
        assert (await app.json(path))["data"] == {"a": 1}
        assert app.sample("sessions_created_total") == 1
        cleared = [e for e in app.runtime.events.since(0) if e.type == "cache_cleared"]
        assert cleared == []


async def test_same_origin_and_non_browser_clients_pass() -> None:
    async with running_app() as app:
        host = f"{app.client.host}:{app.client.port}"
        same = {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
        await app.json("/api/sessions", 201, "POST", json={"data": {}}, headers=same)
        await app.json("/api/sessions", 201, "POST", json={"data": {}})  # curl: no Origin
        # Reads are not state changes: a cross-origin GET is answered (CORS guards the reading).
        await app.json("/api/session-metrics/realtime", headers={"Origin": "https://x.example"})


async def test_gzip_header_on_a_plain_body_is_a_400_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_app() as app:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        body = await app.json("/api/sessions", 400, "POST", data=b'{"data": {}}', headers=headers)
        assert body["error"]["code"] == "bad_content_encoding"
        good = gzip.compress(b'{"data": {"z": 1}}')
        await app.json("/api/sessions", 201, "POST", data=good, headers=headers)
        unknown = {**headers, "Content-Encoding": "compress"}
        body = await app.json("/api/sessions", 415, "POST", data=b'{"data": {}}', headers=unknown)
        assert body["error"]["code"] == "unsupported_content_encoding"
    assert not [r for r in caplog.records if r.exc_info]


@pytest_asyncio.fixture(loop_scope="session")
async def served() -> AsyncIterator[int]:
    """The app behind the exporter's own runner, as `serve` runs it, on a free port."""
    app = create_app(parse_settings(FAST), CollectorRegistry())
    runner = make_runner(app)
    await runner.setup()
    port = free_port()
    await site(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


async def raw_request(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


PARSER_ERRORS = [
    ("url_over_8k", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    ("header_over_8k", b"GET / HTTP/1.1\r\nX-A: " + b"b" * 9000 + b"\r\n\r\n", 431, None),
    ("bad_length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, None),
    ("bad_method", b"FO@O / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_method"),
    ("non_utf8_path", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", 400, None),
    (
        "zstd_without_decoder",
        b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Encoding: zstd\r\n"
        b"Content-Length: 2\r\n\r\n{}",
        415,
        "unsupported_content_encoding",
    ),
]


@pytest.mark.parametrize(("name", "request_bytes", "status", "code"), PARSER_ERRORS)
async def test_parser_errors_are_bounded_json_with_one_log_line(
    served: int,
    caplog: pytest.LogCaptureFixture,
    name: str,
    request_bytes: bytes,
    status: int,
    code: str | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    got, headers, body = await raw_request(served, request_bytes)
    assert got == status, body[:200]
    assert headers["Content-Type"].startswith("application/json")
    error = orjson.loads(body)["error"]
    assert code is None or error["code"] == code
    assert len(body) < 200 and b"aaaa" not in body and b"bbbb" not in body and b"abc" not in body
    ours = [r for r in caplog.records if r.name.startswith(("aiohttp", "exporter"))]
    # Non-HTTP bytes (a bad method token) are scanner noise: debug, as aiohttp itself logs them.
    level = logging.DEBUG if code == "bad_method" else logging.WARNING
    assert len(ours) == 1 and ours[0].levelno == level and ours[0].exc_info is None
    assert len(ours[0].getMessage()) < 200


async def test_a_method_the_parser_does_not_know_is_a_json_400(served: int) -> None:
    status, _, body = await raw_request(served, b"BREW /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, orjson.loads(body)["error"]["code"]) == (400, "bad_method")


async def test_access_log_has_structured_fields_and_no_query_string(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.access")
    app = create_app(parse_settings(FAST), CollectorRegistry())
    runner = make_runner(app, access=True)
    await runner.setup()
    port = free_port()
    await site(runner, "127.0.0.1", port).start()
    try:
        status, _, _ = await raw_request(
            port, b"GET /-/healthy?token=s3cret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    finally:
        await runner.cleanup()
    assert status == 200
    (record,) = [r for r in caplog.records if r.name == "exporter.access"]
    fields = vars(record)
    assert (fields["method"], fields["path"], fields["status"]) == ("GET", "/-/healthy", 200)
    assert fields["duration_ms"] >= 0 and "s3cret" not in record.getMessage()
