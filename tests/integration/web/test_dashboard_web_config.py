"""The dashboard behind `--web-config-file`: over TLS with basic auth, a real Chromium given the
login once loads the page, its files, the reports and the event stream with it (same-origin
requests carry the browser's login), and nothing of it is served without the login."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import bcrypt
import yaml
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.web import create_app
from exporter.web.keys import WEB_CONFIG
from exporter.web.server import make_runner, site
from tests.support.chromium import HeadlessChromium
from tests.support.redis_server import free_port
from tests.support.session_metrics import FAST, wait_for
from tests.support.tls import make_certificates

USER, PASSWORD = "operator", "dashboard-pass-123"
FETCHED = (
    "/",
    "/static/{asset}",
    "/api/session-metrics/realtime",
    "/api/session-metrics/health-check",
    "/api/session-metrics/persistence",
)


def web_config(directory: Path) -> Path:
    certs = make_certificates(directory)
    config = directory / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    document = {
        "tls_server_config": {
            "cert_file": certs.server_cert.name,
            "key_file": certs.server_key.name,
        },
        "basic_auth_users": {USER: hashed},
    }
    config.write_text(yaml.safe_dump(document))
    return config


async def test_the_dashboard_works_over_tls_with_basic_auth(tmp_path: Path) -> None:
    port = free_port()
    settings = {**FAST, "listen": f"127.0.0.1:{port}", "web_config_file": str(web_config(tmp_path))}
    registry = CollectorRegistry()
    app = create_app(parse_settings(settings), registry)
    runner = make_runner(app)
    await runner.setup()
    await site(runner, "127.0.0.1", port, app[WEB_CONFIG].ssl_context).start()

    def requests_of(route: str, status: str) -> float:
        labels = {"route": route, "method": "GET", "status": status}
        return registry.get_sample_value("session_exporter_http_requests_total", labels) or 0.0

    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"https://127.0.0.1:{port}/static/dashboard.js", ssl=False) as anonymous,
        ):
            assert anonymous.status == 401
        url = f"https://{USER}:{PASSWORD}@127.0.0.1:{port}/"
        flags = ("--ignore-certificate-errors",)
        with HeadlessChromium(url, tmp_path, flags) as browser:
            streams = lambda: registry.get_sample_value("session_exporter_sse_clients") == 1  # noqa: E731
            try:
                await wait_for(streams, timeout=60)
            except AssertionError:
                raise AssertionError(f"no stream: {browser.log_tail()}") from None
            # Every request of the page answered, the reports included: fetch() was handed
            # URLs without the login in them (it refuses those) and the browser added it.
            await wait_for(lambda: all(requests_of(r, "200") >= 1 for r in FETCHED), 30)
    finally:
        await runner.cleanup()
