"""Every form of secret the exporter is given, through every output it has: start-up and access
log lines (text and JSON), every JSON answer, the landing page, the event stream, `/metrics`.

Two exporter processes, started together, with every secret form between them: a Redis password
in the URL's query (`?password=`, accepted by redis-py and used here against a real redis-server
that requires it), in its userinfo (user name included), the documented `?sentinel_password=`, a
userinfo password in the Figma API URL, a token in the MCP URL's query, and the Figma (personal
and OAuth), MCP and admin tokens themselves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import requests

from tests.support.exporter_cli import ExporterCli
from tests.support.redis_server import RedisServer, free_port, wait_until

QUERY_PASSWORD = "q-pass/w0rd+1"  # `/` and `+` also appear percent-encoded in the URL
ACL_USER = "acl-user-name-2"
SENTINEL_PASSWORD = "sentinel-Pw-3"
SENTINEL_DATA_PASSWORD = "sentinel-data-Pw-4"
FIGMA_URL_PASSWORD = "figma-url-Pw-5"
MCP_URL_TOKEN = "mcp-url-token-6"
FIGMA_TOKEN = "figd_figma-token-7"
FIGMA_OAUTH_TOKEN = "figu_oauth-token-8"
MCP_TOKEN = "mcp-bearer-token-9"
ADMIN_TOKEN = "admin-token-10"
SECRETS = (
    QUERY_PASSWORD,
    ACL_USER,
    SENTINEL_PASSWORD,
    SENTINEL_DATA_PASSWORD,
    FIGMA_URL_PASSWORD,
    MCP_URL_TOKEN,
    FIGMA_TOKEN,
    FIGMA_OAUTH_TOKEN,
    MCP_TOKEN,
    ADMIN_TOKEN,
)
SEED = "/api/session-metrics"
FAST = {
    "SESSION_EXPORTER_SNAPSHOT_INTERVAL": "0.2",
    "SESSION_EXPORTER_HEALTH_INTERVAL": "0.5",
    "SESSION_EXPORTER_PROBE_INTERVAL": "0.5",
}


@dataclass
class Case:
    exporter: ExporterCli
    masked_url: str  # what the persistence report must show


@pytest.fixture(scope="module")
def protected_redis() -> Iterator[RedisServer]:
    """A redis-server that requires a password."""
    server = RedisServer().start()
    server.client().config_set("requirepass", QUERY_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cases(
    tmp_path_factory: pytest.TempPathFactory, protected_redis: RedisServer
) -> Iterator[list[Case]]:
    port, dead = protected_redis.port, free_port()
    common = ["--access-log", "--admin-token", ADMIN_TOKEN]
    query_url = f"redis://127.0.0.1:{port}/0?password={quote(QUERY_PASSWORD, safe='')}"
    sentinel_url = (
        f"redis+sentinel://{ACL_USER}:{SENTINEL_DATA_PASSWORD}@127.0.0.1:{dead}/mymaster"
        f"?sentinel_password={SENTINEL_PASSWORD}"
    )
    specs = [
        (
            "text",
            query_url,
            f"redis://127.0.0.1:{port}/0?password=***",
            [
                "--figma-token",
                FIGMA_TOKEN,
                "--figma-api-url",
                f"http://figma:{FIGMA_URL_PASSWORD}@127.0.0.1:{dead}",
                "--mcp-url",
                f"http://127.0.0.1:{dead}/mcp?token={MCP_URL_TOKEN}",
                "--mcp-token",
                MCP_TOKEN,
            ],
        ),
        (
            "json",
            sentinel_url,
            f"redis+sentinel://***@127.0.0.1:{dead}/mymaster?sentinel_password=***",
            ["--figma-oauth-token", FIGMA_OAUTH_TOKEN],
        ),
    ]
    started = []
    for index, (log_format, url, masked, extra) in enumerate(specs):
        workdir = tmp_path_factory.mktemp(f"secrets{index}")
        args = [*common, "--log-format", log_format, "--redis-url", url, *extra]
        exporter = ExporterCli(workdir, args, FAST, name=f"exporter{index}").start()
        started.append(Case(exporter, masked))
    try:
        for case in started:
            case.exporter.wait_ready()
        yield started
    finally:
        for case in started:
            case.exporter.stop()


def outputs(exporter: ExporterCli) -> dict[str, str]:
    """What a client can read from the exporter, by where it came from."""
    base, seen = exporter.base, {}
    created = requests.post(f"{base}/api/sessions", json={"data": {"n": 1}}, timeout=10)
    session = created.json()["id"]
    seen["POST /api/sessions"] = created.text
    for path in (
        "/",
        "/endpoints",
        "/static/dashboard.js",
        "/metrics",
        "/-/healthy",
        "/-/ready",
        "/api/openapi.json",
        f"/api/sessions/{session}",
        f"/api/sessions/{session}/metrics",
        "/api/figma/files/FILEKEY",
        "/api/figma/files/FILEKEY/nodes?ids=1:2",
        f"{SEED}/performance",
        f"{SEED}/realtime",
        f"{SEED}/persistence",
        f"{SEED}/health-check?refresh=true",
        f"{SEED}/cache-stats",
        f"/api/session-metrics/realtime?token={ADMIN_TOKEN}",  # a secret in a query: not logged
    ):
        seen[f"GET {path}"] = requests.get(base + path, timeout=15).text
    cleared = requests.post(
        f"{base}{SEED}/cache/clear",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    seen["POST cache/clear"] = cleared.text
    seen["GET /stream"] = event_stream(base)
    seen["GET /metrics (OpenMetrics)"] = requests.get(
        f"{base}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10
    ).text
    return seen


def event_stream(base: str) -> str:
    """The stream's first messages: metrics, health, and every event recorded since start-up."""
    text, deadline = "", time.monotonic() + 20
    stream = f"{base}{SEED}/stream?last_event_id=0"
    with requests.get(stream, stream=True, timeout=10) as response:
        for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
            assert isinstance(chunk, str), "the stream declares its charset: chunks are decoded"
            text += chunk
            wanted = ("event: metrics", "event: health", "event: event")
            if all(kind in text for kind in wanted) or time.monotonic() > deadline:
                break
    return text


def leaks(text: str) -> list[str]:
    forms = {s for secret in SECRETS for s in (secret, quote(secret, safe=""), json.dumps(secret))}
    return sorted(form for form in forms if form in text)


def test_the_session_id_is_not_in_the_access_log(cases: list[Case]) -> None:
    """Session ids are bearer credentials: the access log shows a digest instead."""
    exporter = cases[0].exporter
    session = requests.post(f"{exporter.base}/api/sessions", json={"data": {}}, timeout=10).json()
    assert requests.get(f"{exporter.base}/api/sessions/{session['id']}", timeout=10).ok
    wait_until(lambda: exporter.log().count("GET /api/sessions/") >= 1)
    assert session["id"] not in exporter.log()
    assert "GET /api/sessions/sha256:" in exporter.log()


def test_no_secret_in_any_output(cases: list[Case]) -> None:
    for case in cases:
        seen = outputs(case.exporter)
        for where, text in seen.items():
            assert not leaks(text), f"{where} of {case.exporter.args}: {leaks(text)}"
        persistence = json.loads(seen[f"GET {SEED}/persistence"])
        assert persistence["redis"]["url"] == case.masked_url
        assert "event: event" in seen["GET /stream"]  # the events were really read
    for case in cases:
        assert case.exporter.stop() == 0
        log = case.exporter.log()
        assert not leaks(log), f"the log of {case.exporter.args}: {leaks(log)}"
        assert "Traceback" not in log
        serving = next(line for line in log.splitlines() if "serving on" in line)
        assert case.masked_url in serving  # the start-up line, masked
        assert f"{SEED}/realtime" in log  # the access log was on
